"""Every page accessible and usable on a phone: axe-core, with every rule on, finds no
violation, nothing scrolls sideways at 375 px and the page's main action is on screen,
and the main actions work from the keyboard.

One hub for the module with passwords (so the change-password page exists), spawn
options (the spawn form), named servers and the FaultSpawner (slow-*, fail-*,
failafter-* users give the spawn-pending, failure and error pages).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import ConsoleMessage, Locator, Page, expect

from tests.browser.axe import assert_accessible
from tests.helpers import wait_for
from tests.integration.conftest import ADMIN, Hub, hub_env, start_hub

pytestmark = pytest.mark.browser

PASSWORD = "correct horse battery"
OPTIONS = [
    {"name": "image", "label": "Image", "choices": ["base", "scipy"], "default": "scipy"},
    {"name": "memory", "label": "Memory", "choices": ["1G", "4G"]},
]
PHONE = {"width": 375, "height": 800}


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    data_dir = tmp_path_factory.mktemp("a11y-hub") / "data"
    env = hub_env(
        data_dir,
        authenticator="password",
        spawner="tests.spawners:FaultSpawner",
        slow_spawn_timeout=0.5,
        spawn_options=OPTIONS,
        allow_named_servers=True,
    )
    hub = start_hub(data_dir, env)
    try:
        yield hub
    finally:
        hub.stop()


def account(hub: Hub, name: str) -> str:
    """The user name, with an account and PASSWORD (made the first time)."""
    if hub.query("SELECT 1 FROM users WHERE name = ? AND password_hash IS NOT NULL", name):
        return name
    result = hub.cli("user", "add", name, "--password-stdin", input=PASSWORD + "\n")
    assert result.returncode == 0, result.stderr
    return name


def log_in(page: Page, hub: Hub, name: str) -> None:
    # To the home page, whose states are checked (a login alone lands on the server).
    page.goto(f"{hub.public_url}/hub/login?next=%2Fhub%2Fhome")
    page.get_by_label("Username").fill(account(hub, name))
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{hub.public_url}/hub/home")


# Each page in the state to check, and the locator of its main action. `tag` makes
# the names of the users whose servers change unique to the test.
def login_page(page: Page, hub: Hub, tag: str) -> Locator:
    page.goto(f"{hub.public_url}/hub/login")
    return page.get_by_role("button", name="Sign in")


def home_page(page: Page, hub: Hub, tag: str) -> Locator:
    log_in(page, hub, "fail-cy")
    # A named server (its start fails at once) fills the named servers' table.
    hub.api("POST", "/users/fail-cy/servers/nb")
    page.reload()
    expect(page.get_by_role("button", name="Delete nb")).to_be_visible()
    return page.get_by_role("link", name="Start My Server")


def spawn_form(page: Page, hub: Hub, tag: str) -> Locator:
    log_in(page, hub, "ada")
    page.goto(f"{hub.public_url}/hub/spawn")
    return page.get_by_role("button", name="Start")


def pending_page(page: Page, hub: Hub, tag: str) -> Locator:
    log_in(page, hub, f"slow-{tag}")
    page.goto(f"{hub.public_url}/hub/spawn?image=base&memory=1G")
    page.wait_for_url(f"{hub.public_url}/hub/spawn-pending/slow-{tag}")
    expect(page.locator("#progress-log li").nth(1)).to_have_text("Injected slow step 1 of 3")
    return page.get_by_role("progressbar")


def pending_failure(page: Page, hub: Hub, tag: str) -> Locator:
    log_in(page, hub, f"failafter-{tag}")
    page.goto(f"{hub.public_url}/hub/spawn?image=base&memory=1G")
    # The failure comes SLOW_SECONDS after the spawn began: longer than expect's 5 s
    # default on a busy machine.
    expect(page.get_by_role("alert")).to_contain_text("Injected late failure", timeout=30_000)
    return page.get_by_role("link", name="Relaunch Server")


def error_page(page: Page, hub: Hub, tag: str) -> Locator:
    log_in(page, hub, "fail-cy")
    page.goto(f"{hub.public_url}/hub/spawn?image=base&memory=1G")
    expect(page.locator("#error-message")).to_contain_text("Injected failure for fail-cy")
    return page.get_by_role("link", name="Relaunch Server")


def token_page(page: Page, hub: Hub, tag: str) -> Locator:
    log_in(page, hub, "ada")
    hub.api("POST", "/users/ada/tokens", json={"note": "for the accessibility test"})
    page.goto(f"{hub.public_url}/hub/token")
    expect(page.locator("#api-tokens tbody tr").first).to_be_visible()
    return page.get_by_role("button", name="Request new API token")


def admin_page(page: Page, hub: Hub, tag: str) -> Locator:
    account(hub, "ada")
    log_in(page, hub, ADMIN)
    page.goto(f"{hub.public_url}/hub/admin")
    expect(page.locator('#users tbody tr[data-user="ada"]')).to_be_visible()
    return page.get_by_role("button", name="Stop All")


def edit_user_dialog(page: Page, hub: Hub, tag: str) -> Locator:
    admin_page(page, hub, tag)
    page.get_by_role("button", name="Edit user ada").click()
    return page.get_by_role("dialog", name="Edit user ada").get_by_role("button", name="Save")


def password_page(page: Page, hub: Hub, tag: str) -> Locator:
    log_in(page, hub, "ada")
    page.get_by_role("link", name="Password").click()
    return page.get_by_role("button", name="Change password")


PAGES: dict[str, Callable[[Page, Hub, str], Locator]] = {
    "login": login_page,
    "home": home_page,
    "spawn form": spawn_form,
    "spawn-pending": pending_page,
    "spawn-pending, failed": pending_failure,
    "error": error_page,
    "token": token_page,
    "admin": admin_page,
    "admin, edit user": edit_user_dialog,
    "change-password": password_page,
}


@pytest.mark.parametrize("name", PAGES)
def test_no_axe_violations(page: Page, hub: Hub, name: str) -> None:
    main_action = PAGES[name](page, hub, "axe")
    expect(main_action).to_be_visible()
    assert_accessible(page, name)


# The elements that reach past the viewport's right edge (what to fix).
TOO_WIDE = """() => [...document.querySelectorAll("body *")]
  .filter(e => e.getBoundingClientRect().right > window.innerWidth)
  .map(e => `${e.tagName.toLowerCase()}#${e.id}.${e.className}: ${e.getBoundingClientRect().right}`)
  .slice(0, 8)"""


@pytest.mark.parametrize("name", PAGES)
def test_usable_375_px_wide(page: Page, hub: Hub, name: str) -> None:
    page.set_viewport_size(PHONE)
    main_action = PAGES[name](page, hub, "phone")
    expect(main_action).to_be_visible()
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"{name} is {width} px wide: {page.evaluate(TOO_WIDE)}"
    box = main_action.bounding_box()
    assert box is not None and 0 <= box["x"] and box["x"] + box["width"] <= PHONE["width"], box


FOCUSED_NAME = """() => {
  const e = document.activeElement;
  if (!e || e === document.body) return "";
  const label = e.labels && e.labels.length ? e.labels[0].textContent : "";
  return (e.getAttribute("aria-label") || label || e.textContent || "").trim();
}"""


def tab_to(page: Page, name: str, limit: int = 80) -> list[str]:
    """Press Tab until the element called name has the focus; the names passed on the way."""
    seen: list[str] = []
    for _ in range(limit):
        page.keyboard.press("Tab")
        seen.append(page.evaluate(FOCUSED_NAME))
        if seen[-1] == name:
            return seen
    raise AssertionError(f"Tab never reached {name!r}; focus went through {seen}")


def test_start_my_server_from_the_keyboard(page: Page, hub: Hub) -> None:
    log_in(page, hub, "kai")
    tab_to(page, "Start My Server")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text("Server options")
    tab_to(page, "Memory")
    page.keyboard.press("ArrowDown")  # 1G → 4G
    tab_to(page, "Start")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{hub.public_url}/user/kai/")
    server = hub.api("GET", "/users/kai").json()["servers"][""]
    assert server["ready"] and server["user_options"] == {"image": "scipy", "memory": "4G"}
    hub.api("DELETE", "/users/kai/server")


def test_admin_page_main_actions_from_the_keyboard(page: Page, hub: Hub) -> None:
    account(hub, "lena")
    log_in(page, hub, ADMIN)
    page.goto(f"{hub.public_url}/hub/admin")
    expect(page.locator('#users tbody tr[data-user="lena"]')).to_be_visible()
    seen = tab_to(page, "Create Group", limit=200)
    for control in ["Search users", "Sort by", "Stop All", "Start lena's server",
                    "Make admin: lena", "Delete user lena", "Usernames, one per line",
                    "Add Users", "Group name"]:  # fmt: skip
        assert control in seen, f"{control!r} is not reached by Tab: {seen}"

    # Add a user with the keyboard alone, then make them admin.
    page.locator("body").focus()
    tab_to(page, "Usernames, one per line", limit=200)
    page.keyboard.type("milo")
    tab_to(page, "Add Users")
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_have_text("Added milo.")
    wait_for(lambda: hub.api("GET", "/users/milo").status_code == 200, timeout=10)
    page.get_by_label("Search users").focus()
    page.keyboard.type("milo")
    page.keyboard.press("Enter")
    expect(page.locator("#users tbody tr")).to_have_count(1)
    tab_to(page, "Make admin: milo")
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_have_text("milo is now an admin.")
    assert hub.api("GET", "/users/milo").json()["admin"] is True


@pytest.mark.parametrize("name", PAGES)
def test_every_resource_loads(page: Page, hub: Hub, name: str) -> None:
    """Nothing the page asks for fails, the icon the browser fetches for its tab included
    (without one named, Chromium asked for /favicon.ico: a 404 in the console). The page
    itself may answer with an error status: the error pages say so with it."""
    failed: list[str] = []

    def note(message: ConsoleMessage) -> None:
        if message.type == "error" and message.location.get("url") != page.url:
            failed.append(f"{message.text} ({message.location.get('url')})")

    page.on("console", note)
    main_action = PAGES[name](page, hub, "load")
    expect(main_action).to_be_visible()
    icon = page.locator('link[rel="icon"]').get_attribute("href")
    assert icon is not None
    response = page.request.get(hub.public_url + icon)
    assert response.status == 200
    assert response.headers["content-type"].startswith("image/svg+xml")
    page.wait_for_load_state("networkidle")
    assert not failed
