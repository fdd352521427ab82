"""Make the README's screenshots: the home, spawn-pending, admin and token pages.

Run from the repository root with the test environment (`source .ci/setup --test`):

    .venv/bin/python -m tests.browser.screenshots [OUT_DIR]

It starts a hub of its own as the browser tests do (`flaskhub run` with real CHP,
in a temporary folder, the test FaultSpawner so that a slow-* user's spawn stays
pending), fills it with a few users and servers, and saves one PNG per page in
OUT_DIR (default docs/screenshots), 1000×650.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Page, ViewportSize, expect, sync_playwright

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, TIMEOUT_MS
from tests.helpers import wait_for
from tests.integration.conftest import ADMIN, Hub, hub_env, start_hub

REPO = Path(__file__).resolve().parents[2]
VIEWPORT: ViewportSize = {"width": 1000, "height": 650}


def log_in(page: Page, hub: Hub, name: str) -> None:
    page.goto(f"{hub.public_url}/hub/login?next=%2Fhub%2Fhome")
    page.get_by_label("Username").fill(name)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{hub.public_url}/hub/**")


def start(hub: Hub, path: str) -> None:
    """Start a server through the API and wait until it is ready."""
    assert hub.api("POST", f"/users/{path}").status_code in (201, 202)
    user, _, name = path.partition("/servers/")
    user = user.removesuffix("/server")

    def ready() -> bool:
        servers = hub.api("GET", f"/users/{user}").json()["servers"]
        return bool(servers.get(name, {}).get("ready"))

    wait_for(ready, timeout=60)


def populate(hub: Hub) -> None:
    """A few users: alice with her default server and two named ones, an admin."""
    names = ["alice", "bob", "carol", "dmitri", "eve"]
    hub.api("POST", "/users", json={"usernames": names})
    hub.api("PATCH", "/users/carol", json={"admin": True})
    start(hub, "alice/server")
    start(hub, "alice/servers/analysis")
    hub.api("POST", "/users/alice/servers/reports")
    start(hub, "dmitri/server")
    hub.api("DELETE", "/users/alice/servers/reports")
    wait_for(lambda: not hub.api("GET", "/users/alice").json()["servers"].get("reports"), 60)


def home(page: Page, hub: Hub) -> None:
    log_in(page, hub, "alice")
    page.goto(f"{hub.public_url}/hub/home")
    expect(page.get_by_role("link", name="My Server")).to_be_visible()


def spawn_pending(page: Page, hub: Hub) -> None:
    log_in(page, hub, "slow-sam")
    page.goto(f"{hub.public_url}/hub/spawn")
    page.wait_for_url(f"{hub.public_url}/hub/spawn-pending/slow-sam")
    expect(page.locator("#progress-log li").nth(2)).to_be_visible()


def admin(page: Page, hub: Hub) -> None:
    log_in(page, hub, ADMIN)
    page.goto(f"{hub.public_url}/hub/admin")
    expect(page.locator('#users tbody tr[data-user="alice"]')).to_contain_text("running")


def token(page: Page, hub: Hub) -> None:
    log_in(page, hub, "bob")
    hub.api(
        "POST",
        "/users/bob/tokens",
        json={
            "note": "nightly export",
            "expires_in": 86400,
            "scopes": ["read:users:activity!user"],
        },
    )
    page.goto(f"{hub.public_url}/hub/token")
    page.get_by_label("Note").fill("notebook CI")
    page.get_by_label("Scopes").fill("servers!user")
    page.get_by_role("button", name="Request new API token").click()
    expect(page.locator("#new-token-value")).not_to_be_empty()
    expect(page.locator("#api-tokens tbody tr").first).to_be_visible()
    # The token just made and the list of tokens, rather than the empty form.
    page.get_by_role("button", name="Request new API token").evaluate(
        "button => window.scrollTo(0, button.getBoundingClientRect().top + window.scrollY - 16)"
    )


SHOTS: dict[str, Callable[[Page, Hub], None]] = {
    "home": home,
    "spawn-pending": spawn_pending,
    "admin": admin,
    "token": token,
}


def main(out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="flaskhub-screenshots-") as tmp:
        data_dir = Path(tmp) / "data"
        spawner = "tests.spawners:FaultSpawner"
        env = hub_env(data_dir, spawner=spawner, allow_named_servers=True, slow_spawn_timeout=0.5)
        hub = start_hub(data_dir, env)
        try:
            populate(hub)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                for name, show in SHOTS.items():
                    context = browser.new_context(viewport=VIEWPORT)
                    context.set_default_timeout(TIMEOUT_MS)
                    page = context.new_page()
                    show(page, hub)
                    page.screenshot(path=str(out_dir / f"{name}.png"))
                    print(f"{out_dir / f'{name}.png'}")
                    context.close()
                browser.close()
        finally:
            hub.stop()


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "docs" / "screenshots")
