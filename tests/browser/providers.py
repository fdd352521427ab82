"""Helpers of the browser tests that log in through a real provider (tests/oidc_server.py)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from playwright.sync_api import Page

from tests.helpers import free_port
from tests.integration.conftest import Hub, hub_env, start_hub
from tests.oidc_server import CLIENT_ID, CLIENT_SECRET, OpenIDProvider


@contextmanager
def provider_with_hub(
    tmp_path_factory: pytest.TempPathFactory,
    settings_of: Callable[[OpenIDProvider], dict[str, Any]],
) -> Iterator[tuple[OpenIDProvider, Hub]]:
    """A provider whose client is a hub on a port chosen first, and that hub (its settings
    from `settings_of(provider)`, on top of the client's credentials and CA file)."""
    port = free_port()
    provider = OpenIDProvider(
        tmp_path_factory.mktemp("provider"), [f"http://127.0.0.1:{port}/hub/oauth_callback"]
    )
    provider.start()
    data_dir = tmp_path_factory.mktemp("provider-hub") / "data"
    settings = {
        "port": port,
        "oauth_client_id": CLIENT_ID,
        "oauth_client_secret": CLIENT_SECRET,
        "oauth_ca_file": str(provider.ca_file),
        "oauth_timeout": 5,
        **settings_of(provider),
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


def sign_in(page: Page, hub: Hub, login: str) -> None:
    """From the hub's login page through the provider's login form, back to the hub's home
    page (a login alone lands on the user's server: redirect_to_server)."""
    page.goto(f"{hub.public_url}/hub/login?next=%2Fhub%2Fhome")
    page.click("#provider-login")
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", "any password")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(re.escape(hub.public_url) + r"/hub/.*"))


def page_api(page: Page, path: str) -> Any:
    """GET /hub/api<path> as a hub page's own script does (its XSRF token with the
    cookie); the model, or None when refused. The page must be a hub page with hub.js."""
    page.wait_for_function("window.hubApi !== undefined")
    return page.evaluate(
        "async (url) => { try { return (await window.hubApi('GET', url)).data; }"
        " catch (e) { return null; } }",
        f"/hub/api{path}",
    )


def whoami(page: Page, hub: Hub) -> str | None:
    """Who the browser is logged in as at the hub, or None: the home page in another
    tab of the same browser (this one stays where it is), and the API as that page's
    own script calls it."""
    probe = page.context.new_page()
    try:
        probe.goto(f"{hub.public_url}/hub/home")
        if probe.url != f"{hub.public_url}/hub/home":
            return None  # sent to the login page
        model = page_api(probe, "/user")
        return str(model["name"]) if model else None
    finally:
        probe.close()


def admin_flag(hub: Hub, name: str) -> bool:
    response = hub.api("GET", f"/users/{name}")
    assert response.status_code == 200, response.text
    return bool(response.json()["admin"])
