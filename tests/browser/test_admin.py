"""The admin page in a real browser: users (paged on the server, sorted from the column
headers both ways), their servers (Start whenever one is stopped), admins, the Edit
User dialog, deletion, groups and Stop All, on a phone too, every action checked on
the hub's side."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.browser.axe import assert_accessible
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


def test_start_is_offered_again_after_a_stop(admin_page: Page, hub: Hub) -> None:
    # Stopped once: the user has a default server row, stopped.
    assert hub.api("POST", "/users/hal").status_code == 201
    assert hub.api("POST", "/users/hal/server").status_code in (201, 202)
    wait_for(lambda: running(hub, "hal"), timeout=30)
    assert hub.api("DELETE", "/users/hal/server").status_code in (202, 204)
    wait_for(lambda: not running(hub, "hal") and not user_model(hub, "hal")["pending"], 30)  # type: ignore[index]
    page = admin_page
    page.reload()
    expect(row(page, "hal")).to_contain_text("default: stopped")
    row(page, "hal").get_by_role("button", name="Start hal's server").click()
    wait_for(lambda: running(hub, "hal"), timeout=30)
    hub.api("DELETE", "/users/hal/server")


def names_shown(page: Page) -> list[str]:
    return page.locator("#users tbody tr").evaluate_all("rows => rows.map(r => r.dataset.user)")


def test_column_headers_sort_both_ways(admin_page: Page, hub: Hub) -> None:
    # Activity in another order than the names: hdr-a newest, hdr-b oldest.
    activity = {"hdr-a": "2024-05-01", "hdr-b": "2020-05-01", "hdr-c": "2022-05-01"}
    assert hub.api("POST", "/users", json={"usernames": list(activity)}).status_code == 201
    for name, day in activity.items():
        body = {"last_activity": f"{day}T10:00:00Z"}
        assert hub.api("POST", f"/users/{name}/activity", json=body).status_code == 200
    page = admin_page
    page.get_by_label("Search users").fill("hdr-")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("#users tbody tr")).to_have_count(3)
    header = {
        name: page.locator("#users thead th").filter(has=page.get_by_role("button", name=name))
        for name in ("User", "Last activity")
    }
    expect(header["User"]).to_have_attribute("aria-sort", "ascending")
    assert names_shown(page) == ["hdr-a", "hdr-b", "hdr-c"]

    header["User"].get_by_role("button").click()
    expect(header["User"]).to_have_attribute("aria-sort", "descending")
    wait_for(lambda: names_shown(page) == ["hdr-c", "hdr-b", "hdr-a"], timeout=10)

    header["Last activity"].get_by_role("button").click()
    expect(header["Last activity"]).to_have_attribute("aria-sort", "descending")
    expect(header["User"]).not_to_have_attribute("aria-sort", "descending")
    wait_for(lambda: names_shown(page) == ["hdr-a", "hdr-c", "hdr-b"], timeout=10)
    header["Last activity"].get_by_role("button").click()
    expect(header["Last activity"]).to_have_attribute("aria-sort", "ascending")
    wait_for(lambda: names_shown(page) == ["hdr-b", "hdr-c", "hdr-a"], timeout=10)
    # The select says the same, and sorts the columns' way too.
    expect(page.get_by_label("Sort by")).to_have_value("last_activity")
    page.get_by_label("Sort by").select_option(label="Name, Z to A")
    expect(header["User"]).to_have_attribute("aria-sort", "descending")
    expect(header["Last activity"]).not_to_have_attribute("aria-sort", "ascending")
    wait_for(lambda: names_shown(page) == ["hdr-c", "hdr-b", "hdr-a"], timeout=10)


PHONE = {"width": 375, "height": 800}


def test_row_actions_fit_a_phone(admin_page: Page, hub: Hub) -> None:
    assert hub.api("POST", "/users/phone-run").status_code == 201
    assert hub.api("POST", "/users/phone-run/server").status_code in (201, 202)
    wait_for(lambda: running(hub, "phone-run"), timeout=30)
    hub.api("POST", "/users/phone-off")
    page = admin_page
    page.set_viewport_size(PHONE)  # type: ignore[arg-type]
    page.get_by_label("Search users").fill("phone-")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("#users tbody tr")).to_have_count(2)
    expect(row(page, "phone-run")).to_contain_text("default: running")
    # Nothing to scroll sideways, in the page or in the table's own box.
    overflow = page.evaluate(
        "() => [document.documentElement, document.querySelector('.table-wrap')]"
        ".map(e => e.scrollWidth - e.clientWidth)"
    )
    assert overflow == [0, 0], overflow
    for name, action in (
        ("phone-run", "Stop phone-run's server default"),
        ("phone-run", "Delete user phone-run"),
        ("phone-off", "Start phone-off's server"),
        ("phone-off", "Delete user phone-off"),
        ("phone-off", "Edit user phone-off"),
    ):
        button = row(page, name).get_by_role("button", name=action)
        expect(button).to_be_visible()
        box = button.bounding_box()
        assert box is not None and 0 <= box["x"] and box["x"] + box["width"] <= PHONE["width"], (
            action,
            box,
        )
    assert_accessible(page, "admin, 375 px wide")
    hub.api("DELETE", "/users/phone-run/server")


LOOK = """b => { const s = getComputedStyle(b);
  return [s.color, s.backgroundColor, s.borderColor, s.opacity, s.cursor].join(" "); }"""


def test_disabled_previous_and_next_look_disabled(admin_page: Page, hub: Hub) -> None:
    page = admin_page
    page.get_by_label("Search users").fill("no-such-user-at-all")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("#page-info")).to_have_text("No users")
    previous = page.get_by_role("button", name="Previous")
    following = page.get_by_role("button", name="Next")
    expect(previous).to_be_disabled()
    expect(following).to_be_disabled()
    # Beside an enabled button of the same kind, a disabled one looks different.
    enabled = page.get_by_role("button", name="Search", exact=True).evaluate(LOOK)
    assert previous.evaluate(LOOK) != enabled, enabled
    assert following.evaluate(LOOK) != enabled, enabled
    assert previous.evaluate("b => getComputedStyle(b).cursor") == "not-allowed"


def test_edit_user_dialog_renames_and_sets_admin(admin_page: Page, hub: Hub) -> None:
    hub.api("POST", "/users", json={"usernames": ["ivy", "jon"]})
    page = admin_page
    page.reload()
    row(page, "ivy").get_by_role("button", name="Edit user ivy").click()
    dialog = page.get_by_role("dialog", name="Edit user ivy")
    expect(dialog).to_be_visible()
    name = dialog.get_by_label("Username")
    expect(name).to_have_value("ivy")
    expect(dialog.get_by_label("Admin")).not_to_be_checked()
    expect(name).to_be_focused()

    # A name that is taken, then one that is not a username: said in the dialog.
    name.fill("jon")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog.get_by_role("alert")).to_contain_text("User jon already exists")
    name.fill("ivy <b>")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog.get_by_role("alert")).to_contain_text("Invalid username")
    expect(dialog).to_be_visible()
    assert user_model(hub, "ivy") is not None

    # Cancel changes nothing.
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    assert user_model(hub, "ivy")["admin"] is False  # type: ignore[index]

    row(page, "ivy").get_by_role("button", name="Edit user ivy").click()
    expect(dialog.get_by_role("alert")).to_have_count(0)  # the last error is gone
    name.fill(" IVY2 ")  # the one form of a name: ivy2
    dialog.get_by_label("Admin").check()
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_be_hidden()
    expect(page.get_by_role("status")).to_have_text("Renamed ivy to ivy2. ivy2 is now an admin.")
    expect(row(page, "ivy2")).to_be_visible()
    expect(row(page, "ivy")).to_have_count(0)
    assert user_model(hub, "ivy") is None
    assert user_model(hub, "ivy2")["admin"] is True  # type: ignore[index]


def test_edit_user_dialog_says_why_a_running_user_keeps_the_name(
    admin_page: Page, hub: Hub
) -> None:
    assert hub.api("POST", "/users/kim").status_code == 201
    assert hub.api("POST", "/users/kim/server").status_code in (201, 202)
    wait_for(lambda: running(hub, "kim"), timeout=30)
    page = admin_page
    page.reload()
    row(page, "kim").get_by_role("button", name="Edit user kim").click()
    dialog = page.get_by_role("dialog", name="Edit user kim")
    dialog.get_by_label("Username").fill("kim2")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog.get_by_role("alert")).to_contain_text(
        "Cannot rename kim while a server is active"
    )
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    assert user_model(hub, "kim") is not None
    hub.api("DELETE", "/users/kim/server")
