"""authenticator = "oidc" through Chromium, against a real OpenID provider (npm oidc-provider)."""

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
            "authenticator": "oidc",
            "oauth_issuer": provider.issuer,
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


def test_login(context: BrowserContext, hub: Hub) -> None:
    page = context.new_page()
    sign_in(page, hub, "alice")
    assert page.url == f"{hub.public_url}/hub/home"
    # preferred_username "Alice", normalised like every name.
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


def test_tampered_id_token_is_refused(
    context: BrowserContext, hub: Hub, provider: OpenIDProvider
) -> None:
    provider.fault("tamper")  # the next id token says mallory in ops, signature unchanged
    page = context.new_page()
    sign_in(page, hub, "alice")
    assert "id token did not check out" in page.inner_text("#error-message")
    assert whoami(page, hub) is None
    assert hub.api("GET", "/users/mallory").status_code == 404


def test_wrong_nonce_is_refused(
    context: BrowserContext, hub: Hub, provider: OpenIDProvider
) -> None:
    """An id token with a valid signature, but minted for another login (its nonce)."""
    provider.fault("nonce")
    page = context.new_page()
    sign_in(page, hub, "alice")
    message = page.inner_text("#error-message")
    assert "id token did not check out" in message and "nonce" in message
    assert "Status 403" in page.content()
    assert whoami(page, hub) is None


def test_replayed_state_is_refused(context: BrowserContext, hub: Hub) -> None:
    page = context.new_page()
    callbacks: list[str] = []
    page.on(
        "request", lambda r: callbacks.append(r.url) if "/hub/oauth_callback" in r.url else None
    )
    sign_in(page, hub, "alice")
    assert whoami(page, hub) == "alice" and len(callbacks) == 1
    page.goto(f"{hub.public_url}/hub/logout")
    page.goto(callbacks[0])
    assert "already used" in page.inner_text("#error-message")
    assert whoami(page, hub) is None


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
