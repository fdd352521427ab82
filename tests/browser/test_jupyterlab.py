"""What `./run` gives a person: Start My Server opens JupyterLab (jupyterhub-singleuser
from an environment of its own; here the tests' .venv-jupyter, as ./run's .venv-server)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.browser.test_pages import sign_in
from tests.integration.conftest import Hub, hub_env, start_hub
from tests.integration.test_jupyter_compat import SINGLEUSER

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module", params=["path", "per-user origins"])
def hub(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Hub]:
    if not SINGLEUSER.exists():
        pytest.skip(f"{SINGLEUSER} is missing: run `source .ci/setup --test`")
    data_dir = tmp_path_factory.mktemp("lab-hub") / "data"
    # The tests run as root with the hub's own account for servers: --allow-root here only
    # (./run's servers never run as root).
    env = hub_env(data_dir, spawner_cmd=[str(SINGLEUSER), "--allow-root"])
    if request.param == "per-user origins":
        env["FLASKHUB_SUBDOMAIN_HOST"] = f"http://localhost:{env['FLASKHUB_PORT']}"
    hub = start_hub(data_dir, env)
    try:
        yield hub
    finally:
        hub.stop()


def test_start_my_server_opens_jupyterlab(page: Page, hub: Hub) -> None:
    """In both modes: with per-user origins, JupyterLab on lara's own origin, its login
    through the hub's OAuth there."""
    hub_origin = hub.env.get("FLASKHUB_SUBDOMAIN_HOST", hub.public_url)
    server_origin = (
        hub_origin.replace("://", "://lara.") if hub_origin != hub.public_url else hub_origin
    )
    page.goto(f"{hub_origin}/hub/home")
    sign_in(page, "lara")
    page.get_by_role("link", name="Start My Server").click()
    page.wait_for_url(f"{server_origin}/user/lara/lab**", timeout=60_000)
    expect(page.locator("#jp-main-dock-panel")).to_be_visible(timeout=60_000)
    expect(page).to_have_title("JupyterLab", timeout=30_000)
    server = hub.api("GET", "/users/lara").json()["servers"][""]
    assert server["ready"] is True
    assert hub.api("DELETE", "/users/lara/server").status_code in (202, 204)


def test_jupyterlab_hub_menu_opens_the_hub_and_logs_out(page: Page, hub: Hub) -> None:
    """File > Hub Control Panel opens the hub's home on the hub's origin (a new tab),
    logged in; File > Log Out ends the login there, in both modes."""
    hub_origin = hub.env.get("FLASKHUB_SUBDOMAIN_HOST", hub.public_url)
    page.goto(f"{hub_origin}/hub/home")
    sign_in(page, "mona")
    page.get_by_role("link", name="Start My Server").click()
    page.wait_for_url("**/user/mona/lab**", timeout=60_000)
    expect(page.locator("#jp-main-dock-panel")).to_be_visible(timeout=60_000)
    with page.context.expect_page(timeout=30_000) as opened:
        page.get_by_role("menuitem", name="File").click()
        page.get_by_role("menuitem", name="Hub Control Panel").click()
    panel = opened.value
    panel.wait_for_load_state()
    assert panel.url == f"{hub_origin}/hub/home"
    expect(panel.get_by_role("button", name="Stop My Server")).to_be_visible()
    panel.close()
    page.get_by_role("menuitem", name="File").click()
    page.get_by_role("menuitem", name="Log Out").click()
    page.wait_for_url(f"{hub_origin}/hub/login**", timeout=30_000)
    page.goto(f"{hub_origin}/hub/home")
    page.wait_for_url(f"{hub_origin}/hub/login**")
    assert hub.api("DELETE", "/users/mona/server").status_code in (202, 204)
