"""Findings of the adversarial review (issue 9), each reproduced against the running
system (real CHP, `flaskhub run`) and now answered safely."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from tests.helpers import NAVIGATION, free_port, wait_for, xsrf_token
from tests.integration.conftest import (
    FLASKHUB,
    Hub,
    hub_env,
    login,
    over_the_socket,
    server_pids,
)

pytestmark = pytest.mark.integration

MAX_BODY = 64 * 1024
BROWSER = {"Accept": "text/html"}


@pytest.fixture(scope="module")
def hub(hub_factory: Callable[..., Hub]) -> Hub:
    hub = hub_factory(allow_named_servers=True, max_body_size=MAX_BODY)
    assert hub.api("POST", "/users", json={"usernames": ["alice"]}).status_code == 201
    return hub


def _post_login(
    hub: Hub, name: str = "alice", password: str = "", next_url: str | None = None
) -> requests.Response:
    """Send the login form as a browser does (with `next` if given); the answer, unfollowed."""
    session = requests.Session()
    params = {"next": next_url} if next_url is not None else {}
    page = session.get(f"{hub.public_url}/hub/login", params=params, timeout=10)
    form = {"username": name, "password": password, "_xsrf": xsrf_token(page.text), **params}
    return session.post(
        f"{hub.public_url}/hub/login",
        params=params,
        data=form,
        allow_redirects=False,
        timeout=10,
    )


# C. open redirect after login -------------------------------------------------


@pytest.mark.parametrize(
    "next_url",
    [
        "/\t/evil.example",  # /%09/evil.example: browsers drop the tab
        "\t//evil.example",
        " //evil.example",
        "/\\evil.example",  # browsers read \ as /
        "\\\\evil.example",
        "//evil.example",
        "https://evil.example/hub/home",
        "javascript:alert(1)",
    ],
)
def test_next_never_leaves_the_hub(hub: Hub, next_url: str) -> None:
    response = _post_login(hub, next_url=next_url)
    assert response.status_code == 302
    # Where a login without `next` lands: a new user's server, started (redirect_to_server).
    assert response.headers["Location"] == "/hub/spawn"


def test_a_local_next_is_kept(hub: Hub) -> None:
    response = _post_login(hub, next_url="/hub/user/alice/lab?x=1")
    assert response.headers["Location"] == "/hub/user/alice/lab?x=1"


@pytest.mark.parametrize("next_url", ["/hub/home\r\nSet-Cookie: x=1", "/\n/evil.example"])
def test_a_line_break_in_next_is_400(hub: Hub, next_url: str) -> None:
    response = hub.get("/hub/login", params={"next": next_url})
    assert response.status_code == 400
    assert "must not contain a line break" in response.text
    assert "Set-Cookie" not in response.headers or "x=1" not in response.headers["Set-Cookie"]


# F. request bodies -------------------------------------------------------------


def test_a_body_over_max_body_size_is_413_and_not_echoed(hub: Hub) -> None:
    huge = json.dumps({"last_activity": "x" * (MAX_BODY * 2)})
    response = hub.api("POST", "/users/alice/activity", data=huge)
    assert response.status_code == 413
    body = response.json()
    assert body["status"] == 413 and f"({MAX_BODY} bytes)" in body["message"]
    assert len(response.content) < 500


def test_a_streamed_body_over_max_body_size_is_413(hub: Hub) -> None:
    chunks = iter([b'{"last_activity": "'] + [b"x" * 16384] * (MAX_BODY // 8192))
    response = hub.api("POST", "/users/alice/activity", data=chunks)  # chunked, no length
    assert response.request.headers.get("Transfer-Encoding") == "chunked"
    assert response.status_code == 413
    assert f"({MAX_BODY} bytes)" in response.json()["message"]


def test_a_bad_value_is_named_by_a_short_prefix(hub: Hub) -> None:
    long_value = "y" * 10_000
    response = hub.api("POST", "/users/alice/activity", json={"last_activity": long_value})
    assert response.status_code == 400
    assert "Invalid timestamp 'yyyy" in response.json()["message"]
    assert len(response.content) < 500


# G. loose types ------------------------------------------------------------------


@pytest.mark.parametrize("admin", ["no", 0, 1, "false", None, []])
def test_admin_must_be_a_bool(hub: Hub, admin: object) -> None:
    created = hub.api("POST", "/users", json={"usernames": ["zz1"], "admin": admin})
    assert created.status_code == 400
    assert "admin must be true or false" in created.json()["message"]
    one = hub.api("POST", "/users/zz2", json={"admin": admin})
    assert one.status_code == 400
    assert hub.api("GET", "/users/zz1").status_code == 404
    assert hub.api("GET", "/users/zz2").status_code == 404


# I. PATCH /hub/api/proxy never sends the CHP token to a new URL ---------------------


@pytest.fixture
def listener() -> Iterator[tuple[int, list[bytes]]]:
    """A TCP port on loopback that records whatever connects to it."""
    server = socket.socket()
    server.bind(("127.0.0.1", free_port()))
    server.listen()
    server.settimeout(0.2)
    received: list[bytes] = []
    done = threading.Event()

    def accept() -> None:
        while not done.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(1)
                received.append(conn.recv(65536))

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1], received
    done.set()
    thread.join(timeout=5)
    server.close()


def test_a_new_proxy_url_needs_its_own_token(hub: Hub, listener: tuple[int, list[bytes]]) -> None:
    port, received = listener
    response = hub.api("PATCH", "/proxy", json={"api_url": f"http://127.0.0.1:{port}"})
    assert response.status_code == 400
    assert "needs its auth_token" in response.json()["message"]
    assert received == []
    # The hub still uses its own proxy.
    assert hub.api("POST", "/proxy").status_code == 200


# J. activity far in the future --------------------------------------------------------


def _activity(hub: Hub, when: datetime) -> requests.Response:
    stamp = when.isoformat().replace("+00:00", "Z")
    return hub.api("POST", "/users/alice/activity", json={"last_activity": stamp})


def test_activity_more_than_an_hour_ahead_is_refused(hub: Hub) -> None:
    refused = _activity(hub, datetime(2099, 1, 1, tzinfo=UTC))
    assert refused.status_code == 400 and "is in the future" in refused.json()["message"]
    soon = datetime.now(UTC) + timedelta(minutes=30)
    assert _activity(hub, soon).status_code == 200
    last = hub.api("GET", "/users/alice").json()["last_activity"]
    assert last.startswith(soon.strftime("%Y-%m-%dT%H:%M"))


# M. bad input gets 400/404, never a 500 -----------------------------------------------


def test_deeply_nested_json_is_400(hub: Hub) -> None:
    body = "[" * 20_000 + "]" * 20_000  # within max_body_size
    response = hub.api("POST", "/users", data=body)
    assert response.status_code == 400
    assert "nested too deeply" in response.json()["message"]


def test_a_token_id_too_large_to_store_is_404(hub: Hub) -> None:
    response = hub.api("GET", "/users/alice/tokens/a" + "9" * 24)
    assert response.status_code == 404


@pytest.mark.parametrize("name", ["a" * 129, "é" * 65, "a" * 252])
def test_a_username_longer_than_128_bytes_is_400(hub: Hub, name: str) -> None:
    response = hub.api("POST", "/users", json={"usernames": [name]})
    assert response.status_code == 400
    assert "at most 128 bytes" in response.json()["message"]


def test_a_server_name_longer_than_64_bytes_is_400(hub: Hub) -> None:
    response = hub.api("POST", "/users/alice/servers/" + "s" * 65)
    assert response.status_code == 400
    assert "at most 64 bytes" in response.json()["message"]


# B. the built-in single-user server honours token scopes --------------------------


@pytest.mark.parametrize(
    ("scopes", "status"),
    [
        (["read:users:name!user=alice"], 403),
        (["users:activity!user=alice"], 403),
        (["access:servers!server=alice/other"], 403),
        (["access:servers!server=alice/"], 200),
        (None, 200),  # all of alice's rights
    ],
)
def test_the_users_server_needs_its_access_scope(
    hub: Hub, alice_running: None, scopes: list[str] | None, status: int
) -> None:
    created = hub.api("POST", "/users/alice/tokens", json={"scopes": scopes})
    assert created.status_code == 201, created.text
    token = created.json()["token"]
    response = hub.get("/user/alice/api/status", headers={"Authorization": f"token {token}"})
    assert response.status_code == status, response.text


@pytest.fixture(scope="module")
def alice_running(hub: Hub) -> Iterator[None]:
    assert hub.api("POST", "/users/alice/server").status_code == 201
    yield
    hub.api("DELETE", "/users/alice/server")


# Also: no page may be framed ---------------------------------------------------------


def test_hub_pages_and_the_users_server_forbid_framing(hub: Hub, alice_running: None) -> None:
    assert hub.get("/hub/login").headers["Content-Security-Policy"] == "frame-ancestors 'none'"
    api = hub.api("GET", "/users/alice").headers["Content-Security-Policy"]
    assert api == "frame-ancestors 'none'; default-src 'none'"
    token = hub.api("POST", "/users/alice/tokens", json={}).json()["token"]
    server = hub.get("/user/alice/api/status", headers={"Authorization": f"token {token}"})
    assert server.status_code == 200
    assert server.headers["Content-Security-Policy"] == "frame-ancestors 'none'"


# E. server x of alice and user alice-x do not share a client or a log ---------------


def _open_in_browser(hub: Hub, user: str, prefix: str) -> requests.Response:
    """Log in to the hub as user, then open prefix as a browser does (through OAuth)."""
    session = login(hub, user)
    return session.get(f"{hub.public_url}{prefix}", headers=BROWSER, timeout=30)


def test_a_named_server_and_a_user_of_the_joined_name_stay_apart(
    hub: Hub, alice_running: None
) -> None:
    assert hub.api("POST", "/users/alice-x").status_code == 201
    assert hub.api("POST", "/users/alice/servers/x").status_code == 201
    assert hub.api("POST", "/users/alice-x/server").status_code == 201
    try:
        # Starting alice-x's server after alice's x must not take over x's OAuth client.
        for user, prefix in (("alice", "/user/alice/x/"), ("alice-x", "/user/alice-x/")):
            page = _open_in_browser(hub, user, prefix)
            assert page.status_code == 200, (prefix, page.text[:300])
            assert page.url.endswith(prefix)
            assert f"Hello, {user}" in page.text
        logs = hub.data_dir / "logs"
        assert (logs / "alice~x.log").read_text() != (logs / "alice-x.log").read_text()
        assert "for alice at" in (logs / "alice~x.log").read_text()
        assert "for alice-x at" in (logs / "alice-x.log").read_text()
    finally:
        hub.api("DELETE", "/users/alice/servers/x")
        hub.api("DELETE", "/users/alice-x/server")


# D. files are keyed by a stable id, not by the name -----------------------------------


def _files(hub: Hub, user: str) -> list[str]:
    """The files in user's home, as their running server lists them."""
    token = hub.api("POST", f"/users/{user}/tokens", json={}).json()["token"]
    status = hub.get(f"/user/{user}/api/status", headers={"Authorization": f"token {token}"})
    assert status.status_code == 200, status.text
    return status.json()["files"]


def _storage_id(hub: Hub, user: str) -> str:
    (row,) = hub.query("SELECT storage_id FROM users WHERE name = ?", user)
    return row[0]


def test_a_rename_keeps_the_files_and_a_new_user_of_the_name_gets_none(hub: Hub) -> None:
    assert hub.api("POST", "/users/dora").status_code == 201
    home = hub.data_dir / "home" / _storage_id(hub, "dora")
    assert hub.api("POST", "/users/dora/server").status_code == 201
    (home / "diary.txt").write_text("dora's")
    assert "diary.txt" in _files(hub, "dora")
    hub.api("DELETE", "/users/dora/server")
    renamed = hub.api("PATCH", "/users/dora", json={"name": "dora2"})
    assert renamed.status_code == 200, renamed.text
    assert hub.api("POST", "/users/dora2/server").status_code == 201
    assert "diary.txt" in _files(hub, "dora2")  # the rename kept them
    hub.api("DELETE", "/users/dora2/server")
    assert hub.api("DELETE", "/users/dora2").status_code == 204
    assert hub.api("POST", "/users/dora").status_code == 201
    assert hub.data_dir / "home" / _storage_id(hub, "dora") != home
    assert hub.api("POST", "/users/dora/server").status_code == 201
    assert "diary.txt" not in _files(hub, "dora")  # not the deleted user's files
    assert (home / "diary.txt").read_text() == "dora's"  # kept: keep_user_files
    hub.api("DELETE", "/users/dora/server")


# H. logout ends the session -------------------------------------------------------------


def test_logout_ends_copied_cookies_and_the_servers_logins(hub: Hub, alice_running: None) -> None:
    browser = login(hub, "alice")
    assert browser.get(f"{hub.public_url}/user/alice/", headers=BROWSER, timeout=30).ok
    oauth = [
        t
        for t in hub.api("GET", "/users/alice/tokens").json()["api_tokens"]
        if t["oauth_client"] != "JupyterHub"
    ]
    assert oauth, "the server login gave the server an OAuth token"
    copied = requests.Session()
    copied.headers.update(NAVIGATION)
    copied.cookies.update(browser.cookies)
    assert copied.get(f"{hub.public_url}/hub/api/user", timeout=10).status_code == 200
    browser.get(f"{hub.public_url}/hub/logout", timeout=10)
    # The copied cookie is worth nothing now, and the server's login token is revoked.
    assert copied.get(f"{hub.public_url}/hub/api/user", timeout=10).status_code == 403
    home = copied.get(f"{hub.public_url}/hub/home", allow_redirects=False, timeout=10)
    assert home.status_code == 302 and home.headers["Location"].startswith("/hub/login")
    left = {t["id"] for t in hub.api("GET", "/users/alice/tokens").json()["api_tokens"]}
    assert not left & {t["id"] for t in oauth}


def test_the_login_cookie_is_secure_over_https_and_lasts_14_days(hub: Hub) -> None:
    # As CHP serving HTTPS forwards a request (X-Forwarded-Proto), over the hub's socket.
    _, cookie, _ = over_the_socket(hub, "GET", "/hub/login", {"X-Forwarded-Proto": "https"})
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    plain = login(hub, "alice")  # over plain HTTP, through CHP
    (login_cookie,) = [c for c in plain.cookies if c.name == "flaskhub-session"]
    assert not login_cookie.secure
    assert login_cookie.expires is not None
    days = (login_cookie.expires - datetime.now(UTC).timestamp()) / 86400
    assert 13.9 < days <= 14.0


# K. failed logins are throttled -------------------------------------------------------


def test_repeated_failed_logins_are_throttled_then_forgiven(
    hub_factory: Callable[..., Hub],
) -> None:
    guarded = hub_factory(dummy_password="sesame", login_failure_limit=3, login_failure_window=3)
    for _ in range(3):
        assert _post_login(guarded, "mallory", "guess").status_code == 403
    refused = _post_login(guarded, "mallory", "sesame")  # even the right password
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 3
    assert "Too many failed logins" in refused.text
    # From the same address, another name is refused too, exactly alike, existing or not.
    other = _post_login(guarded, "nobody-at-all", "guess")
    assert other.status_code == 429 and "Too many failed logins" in other.text
    wait_for(lambda: _post_login(guarded, "mallory", "sesame").status_code == 302, timeout=10)


# L. the proxy's error page tells anyone nothing of a user's server ----------------------


def test_the_error_page_shows_nothing_of_another_users_server(hub: Hub) -> None:
    assert hub.api("POST", "/users/bob").status_code == 201
    assert hub.api("POST", "/users/bob/server").status_code == 201
    (pid,) = server_pids("bob", hub)
    os.kill(pid, signal.SIGKILL)  # bob's server dies, with a stop reason to come
    page = hub.get("/hub/error/503", params={"url": "/user/bob/"})  # no login at all
    assert page.status_code == 503
    assert "is not answering" in page.text and 'href="/hub/user/bob/"' in page.text
    assert "stopped unexpectedly" not in page.text and "exit status" not in page.text
    # Only bob, through the hub, learns why.
    shown = login(hub, "bob").get(f"{hub.public_url}/hub/user/bob/", timeout=30)
    assert shown.status_code == 424 and "stopped unexpectedly" in shown.text


# A (in part). The hub's data is for the hub's account alone; the shared account is said ----


def test_the_hubs_data_is_for_its_account_alone(hub: Hub, alice_running: None) -> None:
    assert hub.data_dir.stat().st_mode & 0o777 == 0o700
    files = ["cookie_secret", "proxy_auth_token", "flaskhub.sqlite", "logs/alice.log"]
    for name in files:
        assert (hub.data_dir / name).stat().st_mode & 0o077 == 0, name
    assert "Every user's server runs as this hub's own account" in hub.log()


def test_a_cookie_secret_others_can_read_stops_the_hub(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o700)
    secret = data_dir / "cookie_secret"
    secret.write_text("0" * 64)
    secret.chmod(0o644)
    result = subprocess.run(
        [FLASKHUB, "run"],
        env=hub_env(data_dir),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert f"{secret} can be read by other users: run `chmod 600 {secret}`" in result.stderr
