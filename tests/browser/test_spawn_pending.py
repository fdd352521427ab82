"""The spawn-pending page in a real browser: each progress message as it comes, and a
failed spawn shown with Relaunch, which really starts the server again.

The hub uses tests.spawners.FaultSpawner (slow-* report three steps over 5 s, fail-*
fail at once, failafter-* fail after the steps, held-* servers wait to be released
after their process started; anyone else: the local spawner and the built-in server)
and answers /hub/spawn after 0.5 s.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.browser.test_pages import sign_in
from tests.helpers import wait_for
from tests.integration.conftest import Hub, hub_env, start_hub
from tests.spawners import release_held, start_calls

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


# The local spawner's steps and the hub's after it, in order, as their messages begin.
LOCAL_STEPS = [
    "Server requested",
    "Server runs as the hub's own account",
    "Environment checked",
    "Server process started",
    "Server is listening",
    "Proxy route added",
    "Server ready",
]


def test_local_spawn_moves_the_bar_before_the_server_listens(page: Page, hub: Hub) -> None:
    start_my_server(page, hub, "held-tara")
    page.wait_for_url(f"{hub.public_url}/hub/spawn-pending/held-tara")
    log = page.locator("#progress-log li")
    # Held after its process started: the local spawner's steps are on the page.
    expect(log.nth(3)).to_contain_text("Server process started")
    assert [m.split(":")[0] for m in messages(page)[:3]] == [
        "Server requested",
        "Server runs as the hub's own account",
        "Environment checked",
    ], messages(page)
    value = page.locator("#progress-bar").evaluate("bar => bar.value")
    assert 0 < value < 100, value
    release_held(hub.data_dir, "held-tara")
    page.wait_for_url(f"{hub.public_url}/user/held-tara/")
    hub.api("DELETE", "/users/held-tara/server")


def test_local_spawn_steps_stream_in_order_with_rising_progress(hub: Hub) -> None:
    assert hub.api("POST", "/users/held-uli").status_code == 201
    assert hub.api("POST", "/users/held-uli/server").status_code == 202
    events: list[dict[str, Any]] = []
    response = hub.api("GET", "/users/held-uli/server/progress", stream=True)
    assert response.status_code == 200
    with response:
        for line in response.iter_lines(chunk_size=None, decode_unicode=True):
            if not line.startswith("data:"):
                continue
            events.append(json.loads(line[5:]))
            # Each step arrives as it happens: the server listens only once released.
            if events[-1]["message"].startswith("Server process started"):
                release_held(hub.data_dir, "held-uli")
    got = [e["message"] for e in events]
    assert len(got) == len(LOCAL_STEPS), got
    for message, step in zip(got, LOCAL_STEPS, strict=True):
        assert message.startswith(step), got
    progress = [e["progress"] for e in events]
    assert progress == sorted(set(progress)) and progress[0] == 0 and progress[-1] == 100, events
    assert events[-1]["ready"] is True
    hub.api("DELETE", "/users/held-uli/server")
