"""Issue 21, finding 7: leaving `admin_groups` ends admin at the next request, for the
login cookie and for tokens alike, once the login is older than `auth_refresh_age`
(a real OpenID provider, npm oidc-provider, whose administrators change the groups)."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from playwright.sync_api import BrowserContext, Page

from tests.browser.providers import provider_with_hub, sign_in
from tests.helpers import wait_for
from tests.integration.conftest import Hub
from tests.oidc_server import ACCOUNTS, OpenIDProvider

pytestmark = pytest.mark.browser

REFRESH_AGE = 1.0
# Past auth_refresh_age, with room for a slow machine.
WAIT = REFRESH_AGE + 15


@pytest.fixture(scope="module")
def provider_and_hub(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[OpenIDProvider, Hub]]:
    def settings_of(provider: OpenIDProvider) -> dict[str, Any]:
        return {
            "authenticator": "oidc",
            "oauth_issuer": provider.issuer,
            "oauth_scopes": ["openid", "profile", "groups"],
            "allowed_groups": ["staff"],
            "admin_groups": ["ops"],
            "crypt_key": secrets.token_hex(32),
            "auth_refresh_age": REFRESH_AGE,
        }

    with provider_with_hub(tmp_path_factory, settings_of) as (provider, hub):
        yield provider, hub


@pytest.fixture
def provider(provider_and_hub: tuple[OpenIDProvider, Hub]) -> Iterator[OpenIDProvider]:
    provider = provider_and_hub[0]
    yield provider
    provider.set_groups("carol", ACCOUNTS["carol"]["groups"])


def _by_cookie(page: Page, hub: Hub, path: str) -> int:
    """GET /hub/api<path> as the hub page's own script asks: the cookie and the page's
    XSRF token (without it, a script's request is anonymous)."""
    assert page.url.startswith(f"{hub.public_url}/hub/"), page.url
    return int(
        page.evaluate(
            "async (url) => (await fetch(url, { headers: { 'X-XSRFToken': "
            "document.querySelector('meta[name=\"xsrf-token\"]').content } })).status",
            f"/hub/api{path}",
        )
    )


def _by_token(token: str, hub: Hub, path: str) -> int:
    headers = {"Authorization": f"token {token}"}
    return requests.get(f"{hub.public_url}/hub/api{path}", headers=headers, timeout=30).status_code


def _admin(ask: Callable[[str], int]) -> bool:
    """Whether the credential acts as an admin (reads another user)."""
    return ask("/users/admin") == 200


def test_leaving_the_admin_group_ends_admin_for_cookies_and_tokens(
    context: BrowserContext, provider_and_hub: tuple[OpenIDProvider, Hub], provider: OpenIDProvider
) -> None:
    hub = provider_and_hub[1]
    page = context.new_page()
    sign_in(page, hub, "carol")
    token = hub.token("carol")

    def by_cookie(path: str) -> int:
        return _by_cookie(page, hub, path)

    def by_token(path: str) -> int:
        return _by_token(token, hub, path)

    assert _admin(by_cookie) and _admin(by_token)
    provider.set_groups("carol", ["staff"])
    # The token's request alone notices (no cookie request comes first).
    wait_for(lambda: not _admin(by_token), timeout=WAIT)
    assert not _admin(by_cookie)
    assert by_token("/user") == by_cookie("/user") == 200  # still carol, now not admin
    # Back in the group: the cookie's request alone notices, both ways.
    provider.set_groups("carol", ["staff", "ops"])
    wait_for(lambda: _admin(by_cookie), timeout=WAIT)
    provider.set_groups("carol", ["staff"])
    wait_for(lambda: not _admin(by_cookie), timeout=WAIT)
    assert not _admin(by_token)


def test_leaving_the_allowed_groups_ends_the_login(
    context: BrowserContext, provider_and_hub: tuple[OpenIDProvider, Hub], provider: OpenIDProvider
) -> None:
    hub = provider_and_hub[1]
    page = context.new_page()
    sign_in(page, hub, "carol")
    token = hub.token("carol")
    provider.set_groups("carol", [])
    wait_for(lambda: _by_token(token, hub, "/user") == 403, timeout=WAIT)
    assert _by_cookie(page, hub, "/user") == 403
    # Let in again by the provider: the token works again, the ended cookie does not.
    provider.set_groups("carol", ["staff"])
    wait_for(lambda: _by_token(token, hub, "/user") == 200, timeout=WAIT)
    assert _by_cookie(page, hub, "/user") == 403
