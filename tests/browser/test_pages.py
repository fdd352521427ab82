"""The pages a person expects, in a real browser against the whole system: the links
that lead to one's server, named servers on the home page.

One hub for the module, with named servers allowed; Debian's Chromium via Playwright.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlparse

import pytest
import requests
from playwright.sync_api import Page, expect

from tests.helpers import wait_for
from tests.integration.conftest import Hub, hub_env, start_hub

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    data_dir = tmp_path_factory.mktemp("pages-hub") / "data"
    hub = start_hub(data_dir, hub_env(data_dir, allow_named_servers=True))
    try:
        yield hub
    finally:
        hub.stop()


def _path(url: str) -> str:
    parts = urlparse(url)
    return parts.path + ("?" + parts.query if parts.query else "")


def sign_in(page: Page, name: str) -> None:
    """On the login form the hub sent us to: sign in as name."""
    assert urlparse(page.url).path == "/hub/login", page.url
    page.get_by_label("Username").fill(name)
    page.get_by_role("button", name="Sign in").click()


def servers_of(hub: Hub, name: str) -> dict[str, dict[str, object]]:
    response = hub.api("GET", f"/users/{name}")
    assert response.status_code == 200, response.text
    return response.json()["servers"]


def server_rows(hub: Hub, user: str) -> list[tuple[str, str]]:
    """(name, state) of each of the user's servers, from the database."""
    sql = (
        "SELECT servers.name, servers.state FROM servers JOIN users ON users.id = servers.user_id"
        " WHERE users.name = ? ORDER BY servers.name"
    )
    return [(name, state) for name, state in hub.query(sql, user)]


def test_user_redirect_link_logs_in_then_opens_my_server(page: Page, hub: Hub) -> None:
    page.goto(f"{hub.public_url}/hub/user-redirect/?from=link")
    sign_in(page, "ulla")
    # Implicit spawn, the server's OAuth redirects, then the server itself.
    page.wait_for_url(f"{hub.public_url}/user/ulla/?from=link")
    expect(page.get_by_role("heading", level=1)).to_have_text("Hello, ulla")
    assert servers_of(hub, "ulla")[""]["ready"] is True

    # With the server running, /hub/ is the server (redirect_to_server).
    page.goto(f"{hub.public_url}/hub/")
    assert _path(page.url) == "/user/ulla/", page.url
    assert hub.api("DELETE", "/users/ulla/server").status_code in (202, 204)
    wait_for(lambda: "" not in servers_of(hub, "ulla"), timeout=30)
    # Stopped: /hub/ starts it again and goes there (JupyterHub's default).
    page.goto(f"{hub.public_url}/hub/")
    page.wait_for_url(f"{hub.public_url}/user/ulla/")
    assert servers_of(hub, "ulla")[""]["ready"] is True
    assert hub.api("DELETE", "/users/ulla/server").status_code in (202, 204)


def log_in_home(page: Page, hub: Hub, name: str) -> None:
    page.goto(f"{hub.public_url}/hub/home")
    sign_in(page, name)
    page.wait_for_url(f"{hub.public_url}/hub/home")


def test_named_server_create_open_stop_delete(page: Page, hub: Hub) -> None:
    log_in_home(page, hub, "nina")
    expect(page.get_by_text("You have no named servers yet.")).to_be_visible()
    page.get_by_label("Server name").fill("proj-1")
    page.get_by_role("button", name="Add New Server").click()
    # Spawn page → (pending page) → OAuth → the named server itself.
    page.wait_for_url(f"{hub.public_url}/user/nina/proj-1/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Hello, nina")
    assert servers_of(hub, "nina")["proj-1"]["ready"] is True

    page.goto(f"{hub.public_url}/hub/home")
    row = page.locator('tr[data-server="proj-1"]')
    expect(row.locator(".server-status")).to_have_text("Running")
    expect(row.get_by_role("link", name="Open proj-1")).to_have_attribute(
        "href", "/user/nina/proj-1/"
    )
    row.get_by_role("button", name="Stop proj-1").click()
    expect(row.locator(".server-status")).to_have_text("Stopped")
    assert server_rows(hub, "nina") == [("proj-1", "stopped")]

    # Start again from its row, then delete it while it runs.
    row.get_by_role("link", name="Start proj-1").click()
    page.wait_for_url(f"{hub.public_url}/user/nina/proj-1/")
    page.goto(f"{hub.public_url}/hub/home")
    page.get_by_role("button", name="Delete proj-1").click()
    expect(page.get_by_text("You have no named servers yet.")).to_be_visible()
    assert server_rows(hub, "nina") == []


def test_named_server_with_a_bad_name_is_explained(page: Page, hub: Hub) -> None:
    log_in_home(page, hub, "nora")
    page.get_by_label("Server name").fill(".dot")
    page.get_by_role("button", name="Add New Server").click()
    expect(page.locator("#error-message")).to_contain_text("Invalid server name '.dot'")
    assert server_rows(hub, "nora") == []


def api_as(hub: Hub, token: str, path: str) -> requests.Response:
    return requests.get(
        f"{hub.public_url}/hub/api{path}", headers={"Authorization": f"token {token}"}, timeout=10
    )


def test_token_page_create_see_once_use_and_revoke(page: Page, hub: Hub) -> None:
    log_in_home(page, hub, "tomas")
    page.get_by_role("link", name="Token").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("API tokens")
    expect(page.get_by_text("You have no API tokens.")).to_be_visible()
    page.get_by_label("Note").fill("<b>my notebook</b>")
    page.get_by_label("Expires in").select_option(label="1 day")
    page.get_by_label("Scopes").fill("read:users:activity!user, access:servers!user")
    page.get_by_role("button", name="Request new API token").click()
    expect(page.get_by_role("heading", name="Your new API token")).to_be_visible()
    token = page.locator("#new-token-value").inner_text()
    assert len(token) >= 32, token
    row = page.locator("#api-tokens tbody tr")
    expect(row).to_have_count(1)
    expect(row.get_by_role("rowheader")).to_have_text("<b>my notebook</b>")  # as text
    expect(row).to_contain_text("read:users:activity")
    # The token works, and only with what it was given.
    assert api_as(hub, token, "/user").json()["name"] == "tomas"
    assert api_as(hub, token, "/users/tomas/tokens").status_code == 403
    model = hub.api("GET", "/users/tomas/tokens").json()["api_tokens"]
    assert [t["note"] for t in model] == ["<b>my notebook</b>"]
    assert model[0]["expires_at"] is not None
    # Seen once: a reload shows it no more, but its last use.
    page.reload()
    expect(page.locator("#new-token-value")).to_be_hidden()
    assert token not in page.content()
    expect(row.locator("td").nth(1)).not_to_have_text("Never")
    row.get_by_role("button", name="Revoke <b>my notebook</b>").click()
    expect(page.get_by_text("You have no API tokens.")).to_be_visible()
    assert api_as(hub, token, "/user").status_code == 403


def test_token_page_shows_scopes_as_jupyterhub_does(page: Page, hub: Hub) -> None:
    """A token with all of its owner's rights: JupyterHub 6.1's 15 scopes on the owner, no
    internal names such as (no_scope)."""
    log_in_home(page, hub, "tori")
    page.goto(f"{hub.public_url}/hub/token")
    page.get_by_role("button", name="Request new API token").click()
    expect(page.get_by_role("heading", name="Your new API token")).to_be_visible()
    scopes = page.locator("#api-tokens tbody tr td").first
    expect(scopes).to_contain_text("access:servers!user=tori")
    shown = scopes.inner_text().split()
    assert len(shown) == 15 and shown == sorted(shown), shown
    assert "start:servers!user=tori" in shown and "(no_scope)" not in shown
    assert all(scope.endswith("!user=tori") for scope in shown), shown


def test_token_page_bad_scope_is_explained(page: Page, hub: Hub) -> None:
    """The refusal is said, and the token of an earlier request is no longer shown beside
    it (it would read as made by the refused request)."""
    log_in_home(page, hub, "tess")
    page.goto(f"{hub.public_url}/hub/token")
    page.get_by_label("Note").fill("first")
    page.get_by_role("button", name="Request new API token").click()
    expect(page.locator("#new-token-box")).to_be_visible()
    page.get_by_label("Scopes").fill("admin:everything")
    page.get_by_role("button", name="Request new API token").click()
    expect(page.locator("#token-error")).to_contain_text("admin:everything")
    expect(page.locator("#new-token-box")).to_be_hidden()
    tokens = hub.api("GET", "/users/tess/tokens").json()["api_tokens"]
    assert [t["note"] for t in tokens] == ["first"]


def test_token_page_lists_and_revokes_authorised_applications(page: Page, hub: Hub) -> None:
    log_in_home(page, hub, "uma")
    page.get_by_role("link", name="Start My Server").click()
    page.wait_for_url(f"{hub.public_url}/user/uma/")  # authorised the server (OAuth)
    page.goto(f"{hub.public_url}/hub/token")
    app = page.locator("#apps tbody tr")
    expect(app).to_have_count(1)
    expect(app.get_by_role("rowheader")).to_contain_text("uma")
    expect(app.locator("td").first).not_to_have_text("Never")  # used by the server
    app.get_by_role("button", name="Revoke").click()
    expect(page.get_by_text("You have authorised no applications.")).to_be_visible()
    tokens = hub.api("GET", "/users/uma/tokens").json()["api_tokens"]
    assert [t for t in tokens if t["oauth_client"] != "JupyterHub"] == []
    assert hub.api("DELETE", "/users/uma/server").status_code in (202, 204)
