"""A person in a real browser: log in, start a server, reach it through the proxy, stop it.

Drives Debian's Chromium (Playwright, sync API) against the whole system: `flaskhub run`
with real CHP and real user servers. The user's server authenticates the browser through
the hub's OAuth redirects, which must need no prompt.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

import pytest
from playwright.sync_api import Page, Response, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.browser.conftest import TIMEOUT_MS
from tests.helpers import wait_for
from tests.integration.conftest import Hub

pytestmark = pytest.mark.browser


def _path(url: str) -> str:
    return urlparse(url).path


@contextmanager
def documents(page: Page) -> Iterator[list[Response]]:
    """Collect the responses of the main frame's navigations (redirects included)."""
    seen: list[Response] = []

    def on_response(response: Response) -> None:
        request = response.request
        if request.is_navigation_request() and request.frame == page.main_frame:
            seen.append(response)

    page.on("response", on_response)
    try:
        yield seen
    finally:
        page.remove_listener("response", on_response)


def log_in(page: Page, hub: Hub, typed_name: str) -> None:
    """From the public root to the login form, and sign in."""
    page.goto(f"{hub.public_url}/")
    assert _path(page.url) == "/hub/login", page.url
    page.fill("input[name=username]", typed_name)
    page.click("button[type=submit]")


def log_in_home(page: Page, hub: Hub, name: str) -> None:
    """Sign in from a link to the home page, and land there."""
    page.goto(f"{hub.public_url}/hub/home")
    page.fill("input[name=username]", name)
    page.click("button[type=submit]")
    page.wait_for_url(f"{hub.public_url}/hub/home")
    expect(page.locator("h1")).to_have_text(f"Hello, {name}")


def _reach_my_server(page: Page, hub: Hub, name: str) -> None:
    # Maybe via /hub/spawn-pending/<name>; then the OAuth redirects; then the server.
    try:
        page.wait_for_url(f"{hub.public_url}/user/{name}/", timeout=TIMEOUT_MS)
    except PlaywrightTimeout as e:
        raise AssertionError(
            f"never reached /user/{name}/: at {page.url}\n{page.content()[:2000]}\n"
            f"{hub.log()[-4000:]}"
        ) from e
    page.wait_for_load_state("load")
    assert _path(page.url) == f"/user/{name}/"
    expect(page.locator("h1")).to_have_text(f"Hello, {name}")


def _server_ready(hub: Hub, name: str) -> bool:
    model = hub.api("GET", f"/users/{name}").json()
    return bool(model["servers"].get("", {}).get("ready"))


def test_log_in_lands_on_my_server_started_then_stop_and_start_it(
    page: Page, hub: Hub, tmp_path: Path
) -> None:
    """JupyterHub's default (redirect_to_server): a login with no server goes on to start
    it and opens it, with no click and no prompt on the way."""
    with documents(page) as chain:
        log_in(page, hub, "Wendy ")
        _reach_my_server(page, hub, "wendy")
    page.screenshot(path=str(tmp_path / "user-page.png"), full_page=True)
    steps = [(r.status, _path(r.url)) for r in chain]
    # From the form's answer on, redirects only: the spawn, the OAuth steps, the server.
    after = steps[steps.index((302, "/hub/login")) :]
    assert after[1] == (302, "/hub/spawn"), steps
    assert any(path == "/hub/api/oauth2/authorize" for _, path in after), steps
    assert all(300 <= status < 400 for status, _ in after[:-1]), steps

    page.goto(f"{hub.public_url}/hub/home")
    expect(page.locator("#my-server")).to_have_text("My Server")
    stop = page.locator("#stop")
    expect(stop).to_have_text("Stop My Server")

    stop.click()
    # home.js DELETEs through the API, then reloads the page.
    start = page.locator("#start")
    expect(start).to_have_text("Start My Server", timeout=TIMEOUT_MS)
    expect(page.locator("#stop")).to_have_count(0)
    model = hub.api("GET", "/users/wendy")
    assert model.status_code == 200, model.text
    assert model.json()["server"] is None, model.json()
    start.click()
    _reach_my_server(page, hub, "wendy")
    assert hub.api("DELETE", "/users/wendy/server").status_code in (202, 204)


def test_another_user_cannot_see_my_server(new_page: Callable[[], Page], hub: Hub) -> None:
    created = hub.api("POST", "/users/wendy")
    assert created.status_code in (201, 409), created.text
    started = hub.api("POST", "/users/wendy/server")
    assert started.status_code in (201, 202), started.text
    wait_for(lambda: _server_ready(hub, "wendy"), timeout=30)

    page = new_page()
    log_in_home(page, hub, "xavier")
    with documents(page) as chain:
        page.goto(f"{hub.public_url}/user/wendy/")
        page.wait_for_load_state("load")

    assert chain, "no document was loaded"
    for response in chain:
        if not 300 <= response.status < 400:
            assert "Hello, wendy" not in response.text(), response.url
    assert "Hello, wendy" not in page.content()
    final = chain[-1]
    steps = [(r.status, r.url) for r in chain]
    assert final.status == 403 or _path(page.url).startswith("/user/xavier/"), (
        f"xavier reached {page.url} with {final.status}; chain {steps}"
    )

    stopped = hub.api("DELETE", "/users/wendy/server")
    assert stopped.status_code in (202, 204), stopped.text


def test_home_page_shows_who_is_logged_in_and_how_to_start(page: Page, hub: Hub) -> None:
    log_in_home(page, hub, "yolanda")
    expect(page).to_have_title("Home · FlaskHub")
    expect(page.get_by_role("heading", level=1)).to_have_text("Hello, yolanda")
    expect(page.locator("header .who")).to_have_text("yolanda")
    expect(page.get_by_role("link", name="Log out")).to_have_attribute("href", "/hub/logout")
    start = page.get_by_role("link", name="Start My Server")
    expect(start).to_be_visible()
    expect(start).to_have_attribute("href", "/hub/spawn")
    # Nothing of a running server, and no proxy warning: CHP is up.
    expect(page.get_by_text("Stop My Server")).to_have_count(0)
    expect(page.get_by_role("link", name="My Server", exact=True)).to_have_count(0)
    expect(page.get_by_role("alert")).to_have_count(0)
