"""authenticator = "oidc" through Chromium, against a real OpenID provider (npm oidc-provider)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page

from tests.browser.conftest import TIMEOUT_MS
from tests.helpers import free_port
from tests.integration.conftest import Hub, hub_env, start_hub
from tests.oidc_server import CLIENT_ID, CLIENT_SECRET, OpenIDProvider

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def provider_and_hub(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[OpenIDProvider, Hub]]:
    """A provider whose client is a hub on a port chosen first, and that hub."""
    port = free_port()
    provider = OpenIDProvider(
        tmp_path_factory.mktemp("oidc"), [f"http://127.0.0.1:{port}/hub/oauth_callback"]
    )
    provider.start()
    data_dir = tmp_path_factory.mktemp("oidc-hub") / "data"
    settings = {
        "port": port,
        "authenticator": "oidc",
        "oauth_issuer": provider.issuer,
        "oauth_client_id": CLIENT_ID,
        "oauth_client_secret": CLIENT_SECRET,
        "oauth_scopes": ["openid", "profile", "groups"],
        "oauth_ca_file": str(provider.ca_file),
        "allowed_groups": ["staff"],
        "admin_groups": ["ops"],
        "oauth_timeout": 5,
    }
    try:
        hub = start_hub(data_dir, hub_env(data_dir, **settings))
    except BaseException:
        provider.stop()
        raise
    try:
        yield provider, hub
    finally:
        hub.stop()
        provider.stop()


@pytest.fixture
def provider(provider_and_hub: tuple[OpenIDProvider, Hub]) -> OpenIDProvider:
    return provider_and_hub[0]


@pytest.fixture
def hub(provider_and_hub: tuple[OpenIDProvider, Hub]) -> Hub:
    return provider_and_hub[1]


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh browser (own cookies) that accepts the provider's test certificate."""
    context = browser.new_context(ignore_https_errors=True)
    context.set_default_timeout(TIMEOUT_MS)
    context.set_default_navigation_timeout(TIMEOUT_MS)
    try:
        yield context
    finally:
        context.close()


def sign_in(page: Page, hub: Hub, login: str) -> None:
    """From the hub's login page through the provider's login form, back to the hub."""
    page.goto(f"{hub.public_url}/hub/login")
    page.click("#provider-login")
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", "any password")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(re.escape(hub.public_url) + r"/hub/.*"))


def whoami(page: Page, hub: Hub) -> str | None:
    response = page.request.get(f"{hub.public_url}/hub/api/user")
    return response.json()["name"] if response.ok else None


def admin_flag(hub: Hub, name: str) -> bool:
    response = hub.api("GET", f"/users/{name}")
    assert response.status_code == 200, response.text
    return bool(response.json()["admin"])


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
