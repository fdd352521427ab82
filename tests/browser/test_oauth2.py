"""authenticator = "oauth2" through Chromium, against the real OpenID provider used as a
plain OAuth 2 server: its authorization, token and userinfo endpoints, no id token."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import BrowserContext

from tests.browser.providers import admin_flag, provider_with_hub, sign_in, whoami
from tests.integration.conftest import Hub
from tests.oidc_server import OpenIDProvider

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def provider_and_hub(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[OpenIDProvider, Hub]]:
    def settings_of(provider: OpenIDProvider) -> dict[str, Any]:
        return {
            "authenticator": "oauth2",
            "oauth_authorize_url": f"{provider.issuer}/auth",
            "oauth_token_url": f"{provider.issuer}/token",
            "oauth_userinfo_url": f"{provider.issuer}/me",
            # The provider's userinfo answers only tokens with `openid`; GitHub would
            # take ["read:user"].
            "oauth_scopes": ["openid", "profile", "groups"],
            "allowed_groups": ["staff"],
            "admin_groups": ["ops"],
        }

    with provider_with_hub(tmp_path_factory, settings_of) as (provider, hub):
        yield provider, hub


@pytest.fixture
def provider(provider_and_hub: tuple[OpenIDProvider, Hub]) -> OpenIDProvider:
    return provider_and_hub[0]


@pytest.fixture
def hub(provider_and_hub: tuple[OpenIDProvider, Hub]) -> Hub:
    return provider_and_hub[1]


def test_login_names_the_user_from_userinfo(context: BrowserContext, hub: Hub) -> None:
    page = context.new_page()
    sign_in(page, hub, "alice")
    assert page.url == f"{hub.public_url}/hub/home"
    assert whoami(page, hub) == "alice"
    assert not admin_flag(hub, "alice")


def test_admin_group_from_userinfo(context: BrowserContext, hub: Hub) -> None:
    page = context.new_page()
    sign_in(page, hub, "carol")
    assert whoami(page, hub) == "carol"
    assert admin_flag(hub, "carol")


def test_user_outside_the_allowed_groups_gets_403(context: BrowserContext, hub: Hub) -> None:
    page = context.new_page()
    sign_in(page, hub, "bob")
    assert "bob may not use this hub" in page.inner_text("#error-message")
    assert "Status 403" in page.content()
    assert whoami(page, hub) is None


def test_an_id_token_is_not_needed_nor_checked(
    context: BrowserContext, hub: Hub, provider: OpenIDProvider
) -> None:
    """A plain OAuth 2 hub ignores id tokens: a tampered one changes nothing."""
    provider.fault("tamper")
    page = context.new_page()
    sign_in(page, hub, "alice")
    assert whoami(page, hub) == "alice"
    assert hub.api("GET", "/users/mallory").status_code == 404


def test_replayed_state_is_refused(context: BrowserContext, hub: Hub) -> None:
    page = context.new_page()
    callbacks: list[str] = []
    page.on(
        "request", lambda r: callbacks.append(r.url) if "/hub/oauth_callback" in r.url else None
    )
    sign_in(page, hub, "alice")
    assert whoami(page, hub) == "alice" and len(callbacks) == 1
    page.goto(f"{hub.public_url}/hub/logout")
    assert page.url == f"{hub.public_url}/hub/login"  # no provider logout in plain OAuth 2
    page.goto(callbacks[0])
    assert "already used" in page.inner_text("#error-message")
    assert whoami(page, hub) is None


def test_provider_down_at_the_token_request(
    context: BrowserContext, hub: Hub, provider: OpenIDProvider
) -> None:
    provider.fault("drop")
    page = context.new_page()
    sign_in(page, hub, "alice")
    assert "identity provider cannot be reached" in page.inner_text("#error-message")
    assert "Status 503" in page.content()
