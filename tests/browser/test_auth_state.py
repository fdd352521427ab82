"""Auth state with a real OpenID provider (npm oidc-provider) through Chromium: the
provider's tokens kept encrypted, refreshed before a spawn, handed to the server, a
refused refresh asking for a new login, the id token naming the login at logout, and a
key rotation."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import BrowserContext

from tests.browser.providers import page_api, provider_with_hub, sign_in, whoami
from tests.helpers import wait_for
from tests.integration.conftest import Hub
from tests.oidc_server import OpenIDProvider

pytestmark = pytest.mark.browser

KEY = secrets.token_hex(32)


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    def settings_of(provider: OpenIDProvider) -> dict[str, Any]:
        return {
            "authenticator": "oidc",
            "oauth_issuer": provider.issuer,
            "oauth_scopes": ["openid", "profile", "groups"],
            "allowed_groups": ["staff"],
            "admin_groups": ["ops"],
            "crypt_key": KEY,
            # Every login is stale by the time of a spawn: each spawn refreshes it.
            "auth_refresh_age": 0.001,
            "spawner": "tests.spawners:FaultSpawner",
        }

    with provider_with_hub(tmp_path_factory, settings_of) as (_provider, hub):
        yield hub


def auth_state(hub: Hub, name: str) -> dict[str, Any]:
    response = hub.api("GET", f"/users/{name}")
    assert response.status_code == 200, response.text
    state = response.json()["auth_state"]
    assert isinstance(state, dict)
    return state


def server_environ(hub: Hub, name: str) -> dict[str, str]:
    """The environment of the user's running server process, from /proc."""
    sql = "SELECT s.spawner_state FROM servers s JOIN users u ON u.id = s.user_id WHERE u.name=?"
    pid = json.loads(hub.query(sql, name)[0][0])["pid"]
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)


def test_tokens_kept_encrypted_and_shown_only_to_admin_auth_state(
    context: BrowserContext, hub: Hub
) -> None:
    page = context.new_page()
    sign_in(page, hub, "alice")
    state = auth_state(hub, "alice")
    assert state["claims"]["sub"] == "alice" and state["claims"]["groups"] == ["staff"]
    (raw,) = hub.query("SELECT encrypted_auth_state FROM users WHERE name = 'alice'")[0]
    for key in ("access_token", "refresh_token", "id_token"):
        assert state[key] and state[key].encode() not in raw
    assert b"staff" not in raw
    own = page_api(page, "/users/alice")
    assert own is not None and "auth_state" not in own


def test_spawn_refreshes_the_login_and_hands_the_token_to_the_server(
    context: BrowserContext, hub: Hub
) -> None:
    sign_in(context.new_page(), hub, "carol")
    before = auth_state(hub, "carol")
    response = hub.api("POST", "/users/carol/server")
    assert response.status_code in (201, 202), response.text
    wait_for(lambda: hub.api("GET", "/users/carol").json()["server"], timeout=30)
    after = auth_state(hub, "carol")
    assert after["access_token"] != before["access_token"]
    assert server_environ(hub, "carol")["ACCESS_TOKEN"] == after["access_token"]
    assert hub.api("DELETE", "/users/carol/server").status_code in (202, 204)


def test_refused_refresh_asks_for_a_new_login(context: BrowserContext, hub: Hub) -> None:
    page = context.new_page()
    sign_in(page, hub, "alice")
    stale = {**auth_state(hub, "alice"), "access_token": "revoked", "refresh_token": "revoked"}
    assert hub.api("PATCH", "/users/alice", json={"auth_state": stale}).status_code == 200
    response = hub.api("POST", "/users/alice/server")
    assert response.status_code == 403 and "log in again" in response.json()["message"]
    page.goto(f"{hub.public_url}/hub/spawn")
    assert urlsplit(page.url).path == "/hub/login"
    assert parse_qs(urlsplit(page.url).query)["next"] == ["/hub/spawn"]
    assert whoami(page, hub) is None
    # Logging in again renews the auth state: the spawn goes ahead.
    page.click("#provider-login")
    page.wait_for_url(re.compile(".*(/user/alice/|/hub/spawn-pending/alice)"))
    assert auth_state(hub, "alice")["access_token"] != "revoked"
    assert hub.api("DELETE", "/users/alice/server").status_code in (202, 204)


def test_logout_names_the_login_by_its_id_token(context: BrowserContext, hub: Hub) -> None:
    page = context.new_page()
    sign_in(page, hub, "alice")
    page.goto(f"{hub.public_url}/hub/logout")
    # The login's latest id token (with auth_refresh_age this short, the logout's own
    # request refreshes the login first, and may get a new one).
    id_token = auth_state(hub, "alice")["id_token"]
    assert parse_qs(urlsplit(page.url).query)["id_token_hint"] == [id_token]


def test_read_after_a_key_rotation(hub: Hub) -> None:
    """Last: restarts the hub with a new key first and the old one second."""
    before = auth_state(hub, "alice")
    hub.restart(crypt_key=f"{secrets.token_hex(32)};{KEY}")
    assert auth_state(hub, "alice") == before
