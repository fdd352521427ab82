"""authenticator = "oidc" and "oauth2" through Chromium, against a real OpenID provider
(npm oidc-provider): the same logins, refusals and faults on each, and where they differ
(an OAuth 2 hub reads userinfo and neither needs nor checks an id token), a table says so.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import BrowserContext

from tests.browser.providers import admin_flag, provider_with_hub, sign_in, whoami
from tests.integration.conftest import Hub
from tests.oidc_server import OpenIDProvider

pytestmark = pytest.mark.browser

# Every test runs on each kind unless it names one (oidc first: a test of oidc alone
# shares the oidc hub, see `only`).
KINDS = ("oidc", "oauth2")


def settings_of(kind: str, provider: OpenIDProvider) -> dict[str, Any]:
    """The hub's settings for logging in through `provider` as `kind`."""
    if kind == "oidc":
        endpoints: dict[str, Any] = {"oauth_issuer": provider.issuer}
    else:
        endpoints = {
            "oauth_authorize_url": f"{provider.issuer}/auth",
            "oauth_token_url": f"{provider.issuer}/token",
            "oauth_userinfo_url": f"{provider.issuer}/me",
        }
    return {
        "authenticator": kind,
        **endpoints,
        # The provider's userinfo answers only tokens with `openid`; GitHub would take
        # ["read:user"].
        "oauth_scopes": ["openid", "profile", "groups"],
        "allowed_groups": ["staff"],
        "admin_groups": ["ops"],
    }


@pytest.fixture(scope="module", params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def only(name: str) -> pytest.MarkDecorator:
    """A test of one kind alone; it shares that kind's provider and hub with the others."""
    return pytest.mark.parametrize("kind", [name], indirect=True)


@pytest.fixture(scope="module")
def provider_and_hub(
    kind: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[OpenIDProvider, Hub]]:
    with provider_with_hub(tmp_path_factory, lambda p: settings_of(kind, p)) as both:
        yield both


@pytest.fixture
def provider(provider_and_hub: tuple[OpenIDProvider, Hub]) -> OpenIDProvider:
    return provider_and_hub[0]


@pytest.fixture
def hub(provider_and_hub: tuple[OpenIDProvider, Hub]) -> Hub:
    return provider_and_hub[1]


def test_login(context: BrowserContext, hub: Hub) -> None:
    page = context.new_page()
    sign_in(page, hub, "alice")
    assert page.url == f"{hub.public_url}/hub/home"
    # preferred_username "Alice" (id token or userinfo), normalised like every name.
    assert whoami(page, hub) == "alice"
    assert not admin_flag(hub, "alice")


def test_admin_group_grants_admin(context: BrowserContext, hub: Hub) -> None:
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


def test_claim_that_is_no_valid_username_is_refused(context: BrowserContext, hub: Hub) -> None:
    page = context.new_page()
    sign_in(page, hub, "eve")
    assert "Invalid username" in page.inner_text("#error-message")
    assert whoami(page, hub) is None


# What each kind makes of an id token that does not check out: the next one the provider
# sends says mallory in ops with the signature unchanged (tamper), or is validly signed
# but minted for another login (nonce). An OAuth 2 hub ignores id tokens: alice logs in.
BAD_ID_TOKEN = {"oidc": ("id token did not check out", None), "oauth2": (None, "alice")}


@pytest.mark.parametrize("fault", ["tamper", "nonce"])
def test_an_id_token_that_does_not_check_out(
    context: BrowserContext, hub: Hub, provider: OpenIDProvider, kind: str, fault: str
) -> None:
    refusal, logged_in = BAD_ID_TOKEN[kind]
    provider.fault(fault)
    page = context.new_page()
    sign_in(page, hub, "alice")
    if refusal is not None:
        message = page.inner_text("#error-message")
        assert refusal in message and (fault != "nonce" or "nonce" in message)
        assert "Status 403" in page.content()
    assert whoami(page, hub) == logged_in
    assert hub.api("GET", "/users/mallory").status_code == 404


# Where the hub's logout leads: OpenID Connect's end-session page, or (plain OAuth 2 has
# no provider logout) the hub's login page.
LOGOUT_TO = {"oidc": "{issuer}/session/end", "oauth2": "{hub}/hub/login"}


def test_replayed_state_is_refused(
    context: BrowserContext, hub: Hub, provider: OpenIDProvider, kind: str
) -> None:
    page = context.new_page()
    callbacks: list[str] = []
    page.on(
        "request", lambda r: callbacks.append(r.url) if "/hub/oauth_callback" in r.url else None
    )
    sign_in(page, hub, "alice")
    assert whoami(page, hub) == "alice" and len(callbacks) == 1
    page.goto(f"{hub.public_url}/hub/logout")
    assert page.url.startswith(LOGOUT_TO[kind].format(issuer=provider.issuer, hub=hub.public_url))
    page.goto(callbacks[0])
    assert "already used" in page.inner_text("#error-message")
    assert whoami(page, hub) is None


def test_provider_down_at_the_token_request(
    context: BrowserContext, hub: Hub, provider: OpenIDProvider
) -> None:
    """The provider drops the connection just as the hub trades the code: a clear
    error page, not a 500."""
    provider.fault("drop")
    page = context.new_page()
    sign_in(page, hub, "alice")
    assert "identity provider cannot be reached" in page.inner_text("#error-message")
    assert "Status 503" in page.content()
    assert whoami(page, hub) is None


@only("oidc")
def test_logout_ends_the_provider_session(
    context: BrowserContext, hub: Hub, provider: OpenIDProvider
) -> None:
    page = context.new_page()
    sign_in(page, hub, "alice")
    page.goto(f"{hub.public_url}/hub/logout")
    assert page.url.startswith(f"{provider.issuer}/session/end")
    page.click("button[name=logout]")
    page.wait_for_url(f"{hub.public_url}/hub/login")
    assert whoami(page, hub) is None
    # The provider asks for the login again: its session ended too.
    page.click("#provider-login")
    page.wait_for_selector("input[name=login]")


@only("oidc")
def test_signing_key_rotation_is_followed(
    context: BrowserContext, hub: Hub, provider: OpenIDProvider
) -> None:
    """The provider restarts with a new signing key: the hub fetches its keys again."""
    page = context.new_page()
    sign_in(page, hub, "carol")  # the hub knows the old key now
    page.goto(f"{hub.public_url}/hub/logout")
    context.clear_cookies()
    provider.stop()
    provider.start()
    sign_in(page, hub, "alice")
    assert whoami(page, hub) == "alice"
