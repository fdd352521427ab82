"""Spawn options in a real browser: the declared form at /hub/spawn, the choices
becoming the server's user_options, and ?<name>= in the query skipping the form."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.browser.test_pages import sign_in
from tests.helpers import wait_for
from tests.integration.conftest import Hub, hub_env, start_hub

pytestmark = pytest.mark.browser

OPTIONS = [
    {"name": "image", "label": "Image", "choices": ["base", "scipy"], "default": "scipy"},
    {"name": "memory", "label": "Memory", "choices": ["1G", "4G"]},
]


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    data_dir = tmp_path_factory.mktemp("options-hub") / "data"
    hub = start_hub(data_dir, hub_env(data_dir, spawn_options=OPTIONS))
    try:
        yield hub
    finally:
        hub.stop()


def user_options(hub: Hub, name: str) -> object:
    return hub.api("GET", f"/users/{name}").json()["servers"][""]["user_options"]


def stop(hub: Hub, name: str) -> None:
    assert hub.api("DELETE", f"/users/{name}/server").status_code in (202, 204)
    wait_for(lambda: hub.api("GET", f"/users/{name}").json()["server"] is None, timeout=30)


def test_start_my_server_asks_for_the_options_first(page: Page, hub: Hub) -> None:
    page.goto(f"{hub.public_url}/hub/home")
    sign_in(page, "olga")
    page.get_by_role("link", name="Start My Server").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Server options")
    expect(page.get_by_label("Image")).to_have_value("scipy")
    page.get_by_label("Memory").select_option("4G")
    page.get_by_role("button", name="Start").click()
    page.wait_for_url(f"{hub.public_url}/user/olga/")
    assert user_options(hub, "olga") == {"image": "scipy", "memory": "4G"}
    stop(hub, "olga")


def test_options_in_the_query_skip_the_form(page: Page, hub: Hub) -> None:
    page.goto(f"{hub.public_url}/hub/spawn?image=base")
    sign_in(page, "oscar")
    page.wait_for_url(f"{hub.public_url}/user/oscar/")
    assert user_options(hub, "oscar") == {"image": "base", "memory": "1G"}
    stop(hub, "oscar")
