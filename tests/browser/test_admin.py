"""The admin page in a real browser: users (paged on the server), their servers,
admins, deletion, groups and Stop All, every action checked on the hub's side."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.browser.test_pages import sign_in
from tests.helpers import wait_for
from tests.integration.conftest import ADMIN, Hub, hub_env, start_hub

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    data_dir = tmp_path_factory.mktemp("admin-hub") / "data"
    hub = start_hub(data_dir, hub_env(data_dir, admin_access=False))
    try:
        yield hub
    finally:
        hub.stop()


@pytest.fixture
def admin_page(page: Page, hub: Hub) -> Page:
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto(f"{hub.public_url}/hub/home")
    sign_in(page, ADMIN)
    page.get_by_role("link", name="Admin").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Admin")
    return page


def user_model(hub: Hub, name: str) -> dict[str, object] | None:
    response = hub.api("GET", f"/users/{name}")
    return response.json() if response.status_code == 200 else None


def running(hub: Hub, name: str) -> bool:
    model = user_model(hub, name)
    return bool(model and (model["servers"] or {}).get("", {}).get("ready"))  # type: ignore[union-attr]


def row(page: Page, name: str):  # noqa: ANN201 - a Playwright Locator
    return page.locator(f'#users tbody tr[data-user="{name}"]')


def test_add_users_make_admin_and_delete(admin_page: Page, hub: Hub) -> None:
    page = admin_page
    page.get_by_label("Usernames, one per line").fill("amy\nbert")
    page.get_by_role("button", name="Add Users").click()
    expect(page.get_by_role("status")).to_have_text("Added amy, bert.")
    expect(row(page, "bert")).to_be_visible()
    assert user_model(hub, "amy") is not None and user_model(hub, "bert") is not None

    page.get_by_role("button", name="Make admin: bert").click()
    expect(page.get_by_role("button", name="Unmake admin: bert")).to_be_visible()
    assert user_model(hub, "bert")["admin"] is True  # type: ignore[index]
    page.get_by_role("button", name="Unmake admin: bert").click()
    expect(page.get_by_role("button", name="Make admin: bert")).to_be_visible()
    assert user_model(hub, "bert")["admin"] is False  # type: ignore[index]

    page.get_by_role("button", name="Delete user bert").click()
    expect(row(page, "bert")).to_have_count(0)
    assert user_model(hub, "bert") is None


def test_start_stop_a_users_server_without_opening_it(admin_page: Page, hub: Hub) -> None:
    page = admin_page
    hub.api("POST", "/users/cleo")
    page.reload()
    row(page, "cleo").get_by_role("button", name="Start cleo's server").click()
    wait_for(lambda: running(hub, "cleo"), timeout=30)
    page.reload()
    expect(row(page, "cleo")).to_contain_text("default: running")
    # admin_access is off: no link to open another user's server.
    expect(row(page, "cleo").get_by_role("link")).to_have_count(0)
    row(page, "cleo").get_by_role("button", name="Stop cleo's server default").click()
    wait_for(lambda: not running(hub, "cleo"), timeout=30)
    expect(row(page, "cleo")).not_to_contain_text("running")


def test_stop_all(admin_page: Page, hub: Hub) -> None:
    for name in ("dora", "emil"):
        hub.api("POST", f"/users/{name}")
        assert hub.api("POST", f"/users/{name}/server").status_code in (201, 202)
    wait_for(lambda: running(hub, "dora") and running(hub, "emil"), timeout=30)
    admin_page.get_by_role("button", name="Stop All").click()
    expect(admin_page.get_by_role("status")).to_have_text("Stopping 2 server(s).")
    wait_for(lambda: not running(hub, "dora") and not running(hub, "emil"), timeout=30)


def test_groups_create_members_delete(admin_page: Page, hub: Hub) -> None:
    page = admin_page
    hub.api("POST", "/users/fay")
    page.get_by_label("Group name").fill("team-1")
    page.get_by_role("button", name="Create Group").click()
    group = page.locator('#groups li[data-group="team-1"]')
    expect(group.locator("strong")).to_have_text("team-1")
    group.get_by_label("Username for team-1").fill("fay")
    group.get_by_role("button", name="Add to team-1").click()
    expect(group.locator(".members")).to_have_text("fay")
    assert hub.api("GET", "/groups/team-1").json()["users"] == ["fay"]
    group.get_by_label("Username for team-1").fill("fay")
    group.get_by_role("button", name="Remove from team-1").click()
    expect(group.locator(".members")).to_have_text("no members")
    assert hub.api("GET", "/groups/team-1").json()["users"] == []
    group.get_by_role("button", name="Delete group team-1").click()
    expect(group).to_have_count(0)
    assert hub.api("GET", "/groups/team-1").status_code == 404


def test_users_are_paged_on_the_server(admin_page: Page, hub: Hub) -> None:
    names = [f"page{i:03d}" for i in range(60)]
    assert hub.api("POST", "/users", json={"usernames": names}).status_code == 201
    page = admin_page
    page.reload()
    total = hub.api(
        "GET", "/users?limit=1", headers={"Accept": "application/jupyterhub-pagination+json"}
    ).json()["_pagination"]["total"]
    expect(page.locator("#page-info")).to_have_text(f"Users 1–50 of {total}")
    expect(page.locator("#users tbody tr")).to_have_count(50)
    page.get_by_role("button", name="Next").click()
    expect(page.locator("#page-info")).to_have_text(f"Users 51–{min(100, total)} of {total}")
    page.get_by_role("button", name="Previous").click()
    expect(page.locator("#page-info")).to_have_text(f"Users 1–50 of {total}")


def test_search_by_name(admin_page: Page, hub: Hub) -> None:
    hub.api("POST", "/users", json={"usernames": ["searchme", "other1"]})
    admin_page.get_by_label("Search users").fill("searchme")
    admin_page.get_by_role("button", name="Search").click()
    expect(admin_page.locator("#users tbody tr")).to_have_count(1)
    expect(row(admin_page, "searchme")).to_be_visible()


def test_sort_running_first(admin_page: Page, hub: Hub) -> None:
    # "zzz-run" sorts last by name: only its running server brings it to the top.
    assert hub.api("POST", "/users/zzz-run").status_code == 201
    assert hub.api("POST", "/users/zzz-run/server").status_code in (201, 202)
    wait_for(lambda: running(hub, "zzz-run"), timeout=30)
    page = admin_page
    page.reload()
    first = page.locator("#users tbody tr").first
    expect(first).not_to_have_attribute("data-user", "zzz-run")
    page.get_by_label("Sort by").select_option(label="Running first")
    expect(first).to_have_attribute("data-user", "zzz-run")
    expect(first).to_contain_text("default: running")
    page.get_by_label("Sort by").select_option(label="Name")
    expect(first).not_to_have_attribute("data-user", "zzz-run")
    hub.api("DELETE", "/users/zzz-run/server")


def test_admin_page_is_for_admins(page: Page, hub: Hub) -> None:
    page.goto(f"{hub.public_url}/hub/admin")
    sign_in(page, "gus")
    expect(page.locator("#error-message")).to_have_text("The admin page is for admins.")
    expect(page.get_by_role("link", name="Admin")).to_have_count(0)
