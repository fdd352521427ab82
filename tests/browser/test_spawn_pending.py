"""The spawn-pending page in a real browser: each progress message as it comes, and a
failed spawn shown with Relaunch, which really starts the server again.

The hub uses tests.spawners.FaultSpawner (slow-* report three steps over 5 s, fail-*
fail at once, failafter-* fail after the steps) and answers /hub/spawn after 0.5 s.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.browser.test_pages import sign_in
from tests.helpers import wait_for
from tests.integration.conftest import Hub, hub_env, start_hub
from tests.spawners import start_calls

pytestmark = pytest.mark.browser

FAULTY = {"spawner": "tests.spawners:FaultSpawner", "slow_spawn_timeout": 0.5}


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    data_dir = tmp_path_factory.mktemp("pending-hub") / "data"
    hub = start_hub(data_dir, hub_env(data_dir, **FAULTY))
    try:
        yield hub
    finally:
        hub.stop()


def messages(page: Page) -> list[str]:
    return page.locator("#progress-log li").all_inner_texts()


def start_my_server(page: Page, hub: Hub, name: str) -> None:
    page.goto(f"{hub.public_url}/hub/home")
    sign_in(page, name)
    page.get_by_role("link", name="Start My Server").click()


def test_slow_spawn_messages_appear_one_by_one(page: Page, hub: Hub) -> None:
    start_my_server(page, hub, "slow-petra")
    page.wait_for_url(f"{hub.public_url}/hub/spawn-pending/slow-petra")
    log = page.locator("#progress-log li")
    expect(log.first).to_have_text("Server requested")
    # Steps come 1.7 s apart: each is in the list before the next has happened.
    expect(log.nth(1)).to_have_text("Injected slow step 1 of 3")
    assert "Injected slow step 2 of 3" not in messages(page)
    assert page.locator("#progress-bar").evaluate("bar => bar.value") == 25
    expect(log.nth(2)).to_have_text("Injected slow step 2 of 3")
    assert "Injected slow step 3 of 3" not in messages(page)
    page.wait_for_url(f"{hub.public_url}/user/slow-petra/")
    assert hub.api("GET", "/users/slow-petra").json()["servers"][""]["ready"]
    hub.api("DELETE", "/users/slow-petra/server")


def test_late_failure_is_shown_with_relaunch_that_starts_again(page: Page, hub: Hub) -> None:
    start_my_server(page, hub, "failafter-quinn")
    page.wait_for_url(f"{hub.public_url}/hub/spawn-pending/failafter-quinn")
    expect(page.locator("#progress-log li").nth(1)).to_have_text("Injected slow step 1 of 3")
    relaunch = page.get_by_role("link", name="Relaunch Server")
    expect(relaunch).to_be_hidden()
    alert = page.get_by_role("alert")
    expect(alert).to_have_text("Spawn failed: Injected late failure for failafter-quinn")
    expect(page.get_by_role("heading", level=1)).to_have_text("Spawn failed")
    # The messages that came before the failure stay on the page.
    assert "Injected slow step 3 of 3" in messages(page)
    expect(relaunch).to_be_focused()
    assert start_calls(hub.data_dir, "failafter-quinn") == 1

    relaunch.click()
    page.wait_for_url(f"{hub.public_url}/hub/spawn-pending/failafter-quinn")
    wait_for(lambda: start_calls(hub.data_dir, "failafter-quinn") == 2, timeout=10)
    expect(page.locator("#progress-log li").nth(1)).to_have_text("Injected slow step 1 of 3")
    expect(alert).to_have_text("Spawn failed: Injected late failure for failafter-quinn")


def test_immediate_failure_is_shown_with_relaunch_that_starts_again(page: Page, hub: Hub) -> None:
    start_my_server(page, hub, "fail-rosa")
    expect(page.get_by_role("heading", level=1)).to_have_text("Spawn failed")
    expect(page.locator("#error-message")).to_contain_text("Injected failure for fail-rosa")
    assert start_calls(hub.data_dir, "fail-rosa") == 1

    page.get_by_role("link", name="Relaunch Server").click()
    wait_for(lambda: start_calls(hub.data_dir, "fail-rosa") == 2, timeout=10)
    expect(page.get_by_role("heading", level=1)).to_have_text("Spawn failed")
    expect(page.locator("#error-message")).to_contain_text("Injected failure for fail-rosa")
