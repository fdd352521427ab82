"""A user's server cannot act as the people who open it, in both modes.

The security review's exploit, replayed in Chromium: evil-alice's server
(tests/evil_server.py, whose every byte the test controls) is opened by a logged-in
admin; its script tries to read a hub page and its XSRF token (fetch, window.open, a
frame) and to mint a token for the admin. It must get no token and mint nothing, on
the hub's origin (path mode) and on an origin of its own (per-user origins, with
`*.localhost`, which Chromium resolves to loopback).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from playwright.sync_api import Page, expect

from tests.helpers import wait_for
from tests.integration.conftest import ADMIN, Hub, hub_env, start_hub

pytestmark = pytest.mark.browser

EVIL = "evil-alice"


@pytest.fixture(scope="module")
def hubs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Hub]]:
    """Start hubs with the fault spawner (evil-* users get tests/evil_server.py);
    `per_user_origins` puts servers on http://<user>.localhost:<port>."""
    started: list[Hub] = []

    def start(*, per_user_origins: bool) -> Hub:
        data_dir = tmp_path_factory.mktemp("origin-hub") / "data"
        env = hub_env(data_dir, spawner="tests.spawners:FaultSpawner")
        if per_user_origins:
            env["FLASKHUB_SUBDOMAIN_HOST"] = f"http://localhost:{env['FLASKHUB_PORT']}"
        started.append(start_hub(data_dir, env))
        return started[-1]

    yield start
    for hub in started:
        hub.stop()


@pytest.fixture(scope="module")
def path_hub(hubs: Callable[..., Hub]) -> Hub:
    return hubs(per_user_origins=False)


@pytest.fixture(scope="module")
def origin_hub(hubs: Callable[..., Hub]) -> Hub:
    return hubs(per_user_origins=True)


def hub_origin(hub: Hub) -> str:
    return hub.env.get("FLASKHUB_SUBDOMAIN_HOST") or hub.public_url


def start_server(hub: Hub, name: str) -> str:
    """Start name's server through the API (if it is not running); its URL once ready."""
    hub.api("POST", "/users", json={"usernames": [name]})
    if not hub.api("GET", f"/users/{name}").json()["server"]:
        assert hub.api("POST", f"/users/{name}/server").status_code in (201, 202)
    return str(wait_for(lambda: hub.api("GET", f"/users/{name}").json()["server"]))


def log_in_as_admin(page: Page, hub: Hub) -> None:
    origin = hub_origin(hub)
    page.goto(f"{origin}/hub/login?next=%2Fhub%2Fhome")
    page.fill("input[name=username]", ADMIN)
    page.click("button[type=submit]")
    page.wait_for_url(f"{origin}/hub/home")


def attack(page: Page, hub: Hub, server_url: str) -> dict[str, Any]:
    """The admin, logged in, opens the evil server: what its script got."""
    log_in_as_admin(page, hub)
    page.goto(f"{server_url}evil?victim={ADMIN}&hub={hub_origin(hub)}")
    page.wait_for_function("document.title === 'done'")
    return dict(json.loads(page.locator("#result").text_content() or "{}"))


def stolen_tokens(hub: Hub) -> list[dict[str, Any]]:
    tokens = hub.api("GET", f"/users/{ADMIN}/tokens").json()["api_tokens"]
    return [t for t in tokens if t.get("note") == "stolen"]


def test_path_mode_a_server_reads_no_hub_page_and_mints_nothing(path_hub: Hub, page: Page) -> None:
    url = start_server(path_hub, EVIL)
    assert url == f"/user/{EVIL}/"
    got = attack(page, path_hub, path_hub.public_url + url)
    # The script ran every step: its fetch reached the hub, and its window opened.
    assert got["fetch_url"] == f"{path_hub.public_url}/hub/login?next=%2Fhub%2Fhome", got
    assert got["fetch_is_login"] and got["popup_opened"], got
    # fetch() got the login page, whose token is worth nothing; the window (COOP) and
    # the frame (frame-ancestors) could not be read; no mint succeeded.
    assert not got.get("popup_xsrf") and not got.get("frame_xsrf"), got
    assert got["mint_status"] == 403, got
    assert stolen_tokens(path_hub) == []
    # The admin is still logged in for their own navigations.
    page.goto(f"{path_hub.public_url}/hub/home")
    assert page.url == f"{path_hub.public_url}/hub/home"


def test_per_user_origins_a_server_reads_no_hub_page_and_mints_nothing(
    origin_hub: Hub, page: Page
) -> None:
    url = start_server(origin_hub, EVIL)
    port = origin_hub.env["FLASKHUB_PORT"]
    assert url == f"http://{EVIL}.localhost:{port}/user/{EVIL}/"
    # CHP routes by host: the route names the user's host.
    assert f"/{EVIL}.localhost/user/{EVIL}" in origin_hub.routes()
    got = attack(page, origin_hub, url)
    # Another origin: the browser lets the script read no answer of the hub's and
    # sends no write (the preflight gets no CORS header), whatever the page tries.
    assert got["popup_opened"], got
    assert "fetch_error" in got and "mint_status" not in got, got
    assert "popup_error" in got and not got.get("popup_xsrf"), got
    assert not got.get("frame_xsrf"), got
    assert stolen_tokens(origin_hub) == []


def test_per_user_origins_the_server_logs_in_on_its_own_origin(origin_hub: Hub, page: Page) -> None:
    """Start My Server lands on the user's origin, through the hub's OAuth there; the
    hub's cookie stays on the hub's host."""
    origin = hub_origin(origin_hub)
    port = origin_hub.env["FLASKHUB_PORT"]
    log_in_as_admin(page, origin_hub)
    page.goto(f"{origin}/hub/spawn")
    page.wait_for_url(f"http://{ADMIN}.localhost:{port}/user/{ADMIN}/**")
    expect(page.locator("h1")).to_have_text(f"Hello, {ADMIN}")
    cookies = {(c["name"], c["domain"]) for c in page.context.cookies()}
    assert ("flaskhub-session", "localhost") in cookies
    assert not any(name == "flaskhub-session" and domain != "localhost" for name, domain in cookies)
    # The hub on a user's origin sends the browser to its own origin.
    page.goto(f"http://{ADMIN}.localhost:{port}/hub/home")
    assert page.url == f"{origin}/hub/home"


@pytest.mark.parametrize("worker", ["watch", "preload"])
def test_path_mode_a_servers_service_worker_gets_no_token(
    path_hub: Hub, page: Page, worker: str
) -> None:
    """A server's service worker of scope / (Service-Worker-Allowed) sees the hub pages'
    requests (`watch`) or reads them through navigation preload (`preload`): the hub
    answers a preload as a script's request, and a page a worker controls blanks its
    token, unregisters the worker and loads again."""
    server = path_hub.public_url + start_server(path_hub, EVIL)
    requests.get(f"{server}reports?clear=1", timeout=10)
    log_in_as_admin(page, path_hub)
    page.goto(f"{server}evil?worker={worker}&victim={ADMIN}")
    page.wait_for_function("document.title === 'done'")
    page.goto(f"{path_hub.public_url}/hub/admin")
    # The worker controlled the page (it saw the page's own requests)...
    reports = lambda: requests.get(f"{server}reports", timeout=10).json()  # noqa: E731
    wait_for(lambda: any(r.get("url", "").startswith("/hub/") for r in reports()))
    # ...and then none: the page dropped it and loaded again, as the admin.
    page.wait_for_function(
        "navigator.serviceWorker.controller === null && location.pathname === '/hub/admin'"
    )
    expect(page.locator("#admin")).to_be_visible()
    assert page.evaluate("navigator.serviceWorker.getRegistrations().then((r) => r.length)") == 0
    seen = reports()
    # At most the login page's token, of no login: no mint passed.
    assert all(r.get("mint", 403) == 403 for r in seen), seen
    assert not any(r.get("token") for r in seen if r.get("url") != "/hub/login"), seen
    assert stolen_tokens(path_hub) == []


def test_per_user_origins_an_accepted_share_opens_the_server_on_its_origin(
    origin_hub: Hub, page: Page
) -> None:
    """The review's lure, as it would be sent: accept-share with `next` on the server;
    and the plain invitation, whose Accept goes to the server's own origin."""
    url = start_server(origin_hub, EVIL)
    code = origin_hub.api("POST", f"/share-codes/{EVIL}/", json={"expires_in": 600})
    assert code.status_code == 200, code.text
    log_in_as_admin(page, origin_hub)
    page.goto(f"{hub_origin(origin_hub)}{code.json()['accept_url']}")
    page.get_by_role("button", name=re.compile("Accept and open")).click()
    page.wait_for_url(f"{url}**")
    page.wait_for_function("document.title === 'done'")
