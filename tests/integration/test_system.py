"""The whole system over real HTTP: hub + real CHP + real user-server processes."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import requests

from tests.helpers import browser_session, wait_for, xsrf_token
from tests.integration.conftest import FLASKHUB, Hub, hub_env, pid_alive

pytestmark = pytest.mark.integration


def _server_pid(hub: Hub, name: str) -> int:
    response = hub.api("GET", f"/users/{name}")
    assert response.status_code == 200
    token = hub.token(name)
    status = hub.get(f"/user/{name}/api/status", headers={"Authorization": f"token {token}"})
    assert status.status_code == 200, status.text
    return int(status.json()["pid"])


def test_start_reach_and_stop_a_server_through_the_proxy(hub: Hub) -> None:
    created = hub.api("POST", "/users", json={"usernames": ["alice", "bob"]})
    assert created.status_code == 201
    assert sorted(u["name"] for u in created.json()) == ["alice", "bob"]

    started = hub.api("POST", "/users/alice/server")
    assert started.status_code == 201, started.text
    model = hub.api("GET", "/users/alice").json()
    assert model["server"] == "/user/alice/"
    assert model["servers"][""]["ready"] is True
    assert "/user/alice" in hub.routes()

    alice, bob = hub.token("alice"), hub.token("bob")
    status = hub.get("/user/alice/api/status", headers={"Authorization": f"token {alice}"})
    assert status.status_code == 200
    assert status.json()["user"] == "alice"
    assert status.headers["X-JupyterHub-Version"] == "6.1.1"
    pid = int(status.json()["pid"])
    assert pid_alive(pid)

    other = hub.get("/user/alice/api/status", headers={"Authorization": f"token {bob}"})
    assert other.status_code == 403
    bad = hub.get("/user/alice/api/status", headers={"Authorization": "token nope"})
    assert bad.status_code == 403

    stopped = hub.api("DELETE", "/users/alice/server")
    assert stopped.status_code == 204
    wait_for(lambda: not pid_alive(pid), timeout=10)
    assert "/user/alice" not in hub.routes()
    assert hub.api("GET", "/users/alice").json()["server"] is None


def test_user_server_refuses_anonymous_browsers_with_a_login_redirect(hub: Hub) -> None:
    hub.api("POST", "/users/carol")
    assert hub.api("POST", "/users/carol/server").status_code == 201
    page = hub.get("/user/carol/", headers={"Accept": "text/html"})
    assert page.status_code == 302
    assert page.headers["Location"].startswith("/hub/api/oauth2/authorize?")
    authorize = hub.get(page.headers["Location"])
    assert authorize.status_code == 302
    assert authorize.headers["Location"].startswith("/hub/login?next=")
    assert hub.api("DELETE", "/users/carol/server").status_code == 204


def test_user_api_shapes(hub: Hub) -> None:
    hub.api("POST", "/users/dave")
    token = hub.token("dave")
    me = hub.api("GET", "/user", token=token)
    assert me.status_code == 200
    body = me.json()
    assert body["kind"] == "user" and body["name"] == "dave" and body["admin"] is False
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z", body["created"])
    assert hub.api("GET", "").json() == {"version": "6.1.1"}
    # A user sees only themself in the list; an admin sees everyone.
    assert [u["name"] for u in hub.api("GET", "/users", token=token).json()] == ["dave"]
    names = [u["name"] for u in hub.api("GET", "/users").json()]
    assert {"admin", "dave"} <= set(names)
    paged = hub.api(
        "GET", "/users?limit=1", headers={"Accept": "application/jupyterhub-pagination+json"}
    )
    assert paged.status_code == 200
    assert len(paged.json()["items"]) == 1
    assert paged.json()["_pagination"]["total"] == len(names)


def test_a_roster_in_mixed_case_works_in_every_call(hub: Hub) -> None:
    """JupyterHub's: `Rosa` is `rosa` in every call; `ROSA` after `rosa` is a 409."""
    created = hub.api("POST", "/users/Rosa")
    assert created.status_code == 201 and created.json()["name"] == "rosa"
    assert hub.api("POST", "/users/ROSA").status_code == 409
    assert hub.api("GET", "/users/ROSA").json()["name"] == "rosa"
    assert hub.api("POST", "/users/Rosa/server").status_code == 201
    assert hub.api("GET", "/users/rosa").json()["server"] == "/user/rosa/"
    assert hub.api("DELETE", "/users/RoSa/server").status_code == 204
    assert hub.api("DELETE", "/users/Rosa").status_code == 204
    assert hub.api("GET", "/users/rosa").status_code == 404
    refused = hub.api("GET", "/users/ｒｏｓａ")
    assert refused.status_code == 400 and "Invalid username" in refused.json()["message"]


@pytest.mark.parametrize(
    "name", ["", "   ", "has space", "a/b", "-leading-dash", "x" * 256, "semi;colon", "ünï/x"]
)
def test_invalid_usernames_are_refused_with_a_message(hub: Hub, name: str) -> None:
    response = hub.api("POST", "/users", json={"usernames": [name]})
    assert response.status_code == 400
    assert "Invalid username" in response.json()["message"]


def test_usernames_are_normalised(hub: Hub) -> None:
    response = hub.api("POST", "/users", json={"usernames": ["  Erin "]})
    assert response.status_code == 201
    assert response.json()[0]["name"] == "erin"
    again = hub.api("POST", "/users", json={"usernames": ["ERIN"]})
    assert again.status_code == 409


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/users/nobody-here", 404),
        ("POST", "/users/nobody-here/server", 404),
        ("DELETE", "/users/nobody-here", 404),
    ],
)
def test_unknown_users_are_404(hub: Hub, method: str, path: str, status: int) -> None:
    response = hub.api(method, path)
    assert response.status_code == status
    assert "nobody-here" in response.json()["message"]


@pytest.mark.parametrize("header", ["token wrong", "Bearer wrong", "Basic abc", ""])
def test_bad_or_missing_tokens_are_403(hub: Hub, header: str) -> None:
    response = hub.api("GET", "/users", headers={"Authorization": header})
    assert response.status_code == 403
    assert response.json()["status"] == 403


def test_bearer_scheme_is_case_insensitive(hub: Hub) -> None:
    response = hub.api("GET", "/user", headers={"Authorization": f"BEARER {hub.admin_token}"})
    assert response.status_code == 200
    assert response.json()["name"] == "admin"


def test_malformed_json_is_400_and_stores_nothing(hub: Hub) -> None:
    before = len(hub.api("GET", "/users").json())
    response = hub.api(
        "POST", "/users", data=b'{"usernames": ["x"', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert "valid JSON" in response.json()["message"]
    assert len(hub.api("GET", "/users").json()) == before


def test_non_admin_cannot_act_for_others(hub: Hub) -> None:
    hub.api("POST", "/users", json={"usernames": ["frank", "grace"]})
    frank = hub.token("frank")
    assert hub.api("POST", "/users/grace/server", token=frank).status_code == 403
    assert hub.api("DELETE", "/users/grace", token=frank).status_code == 403
    assert hub.api("POST", "/users", token=frank, json={"usernames": ["h"]}).status_code == 403


def test_cannot_delete_yourself(hub: Hub) -> None:
    response = hub.api("DELETE", "/users/admin")
    assert response.status_code == 400
    assert response.json()["message"] == "Cannot delete yourself!"


def test_delete_user_stops_their_server(hub: Hub) -> None:
    hub.api("POST", "/users/ivan")
    assert hub.api("POST", "/users/ivan/server").status_code == 201
    pid = _server_pid(hub, "ivan")
    assert hub.api("DELETE", "/users/ivan").status_code == 204
    wait_for(lambda: not pid_alive(pid), timeout=10)
    assert hub.api("GET", "/users/ivan").status_code == 404
    assert "/user/ivan" not in hub.routes()


def test_hub_pages_and_redirects(hub: Hub) -> None:
    assert hub.get("/hub/health").status_code == 200
    assert hub.get("/hub/home").headers["Location"].startswith("/hub/login?next=")
    bare = hub.get("/user/nobody?x=1")
    assert bare.status_code in (301, 302, 308)
    assert bare.headers["Location"] == "/user/nobody/?x=1"
    other = hub.get("/some/where?q=2")
    assert other.headers["Location"] == "/hub/some/where?q=2"
    login = hub.get("/hub/login")
    assert login.status_code == 200 and "Log in" in login.text


def test_login_form_requires_its_csrf_token(hub: Hub) -> None:
    session = browser_session()
    session.get(f"{hub.public_url}/hub/login", timeout=10)
    forged = session.post(
        f"{hub.public_url}/hub/login", data={"username": "kim"}, allow_redirects=False, timeout=10
    )
    assert forged.status_code == 403
    assert "XSRF" in forged.text


def test_login_cookie_is_httponly_samesite_and_scoped_to_the_hub(hub: Hub) -> None:
    session = browser_session()
    page = session.get(f"{hub.public_url}/hub/login", timeout=10)
    xsrf = xsrf_token(page.text)
    response = session.post(
        f"{hub.public_url}/hub/login",
        data={"username": "Lee", "_xsrf": xsrf},
        allow_redirects=False,
        timeout=10,
    )
    assert response.status_code == 302
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/hub/" in cookie
    home = session.get(f"{hub.public_url}/hub/home", timeout=10)
    assert "Start My Server" in home.text and "Hello, lee" in home.text


def test_proxy_unreachable_the_hub_still_serves_and_says_so(hub_factory) -> None:  # type: ignore[no-untyped-def]
    hub = hub_factory(proxy_auto_start=False)
    # No CHP at all: talk to the hub directly.
    hub.public_url = hub.hub_url
    assert hub.get("/hub/health").status_code == 200
    session = browser_session()
    page = session.get(f"{hub.hub_url}/hub/login", timeout=10)
    xsrf = xsrf_token(page.text)
    form = {"username": "mia", "_xsrf": xsrf}
    session.post(f"{hub.hub_url}/hub/login", data=form, allow_redirects=False, timeout=10)
    home = session.get(f"{hub.hub_url}/hub/home", timeout=10)
    assert home.status_code == 200
    assert "The proxy is unavailable" in home.text
    started = hub.api("POST", "/users/mia/server")
    assert started.status_code == 500
    assert "proxy" in started.json()["message"].lower()


def test_unwritable_data_dir_is_a_clear_startup_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    env = hub_env(blocker / "data")
    result = subprocess.run([FLASKHUB, "run"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "data_dir" in result.stderr and "not writable" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_setting_is_a_clear_startup_error(tmp_path: Path) -> None:
    env = hub_env(tmp_path / "data", port="not-a-port")
    result = subprocess.run([FLASKHUB, "run"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "'port'" in result.stderr and "FLASKHUB_PORT" in result.stderr
    assert "Traceback" not in result.stderr


def test_ctrl_c_stops_servers_and_the_proxy(hub_factory) -> None:  # type: ignore[no-untyped-def]
    hub = hub_factory()
    hub.api("POST", "/users/nora")
    assert hub.api("POST", "/users/nora/server").status_code == 201
    pid = _server_pid(hub, "nora")
    assert hub.stop() == 0
    assert not pid_alive(pid)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{hub.proxy_api_url}/api/routes", timeout=2)


def test_password_accounts_from_the_cli(hub_factory) -> None:  # type: ignore[no-untyped-def]
    hub = hub_factory(authenticator="password")
    added = hub.cli("user", "add", "Zoe", "--password-stdin", input="correct horse battery\n")
    assert added.returncode == 0, added.stderr
    short = hub.cli("user", "add", "yan", "--password-stdin", input="short\n")
    assert short.returncode != 0 and "at least 8 characters" in short.stderr
    session = browser_session()

    def attempt(name: str, password: str) -> requests.Response:
        page = session.get(f"{hub.public_url}/hub/login", timeout=10)
        xsrf = xsrf_token(page.text)
        return session.post(
            f"{hub.public_url}/hub/login",
            allow_redirects=False,
            timeout=30,
            data={"username": name, "password": password, "_xsrf": xsrf},
        )

    wrong = attempt("zoe", "wrong password")
    assert wrong.status_code == 403 and "Invalid username or password." in wrong.text
    assert attempt("nobody", "correct horse battery").status_code == 403
    right = attempt(" ZOE", "correct horse battery")
    # Zoe has no server yet: to /hub/spawn, which starts it (redirect_to_server).
    assert right.status_code == 302 and right.headers["Location"] == "/hub/spawn"
    # An admin resets it: the new password works, the old one no more, Zoe's login ended.
    reset = hub.cli("user", "set-password", "zoe", "--password-stdin", input="staple battery\n")
    assert reset.returncode == 0, reset.stderr
    assert session.get(f"{hub.public_url}/hub/api/user", timeout=10).status_code == 403
    assert attempt("zoe", "correct horse battery").status_code == 403
    assert attempt("zoe", "staple battery").status_code == 302
    unknown = hub.cli("user", "set-password", "nobody", "--password-stdin", input="long enough\n")
    assert unknown.returncode != 0 and "No such user: nobody" in unknown.stderr


def _proxy_pid(hub: Hub) -> int | None:
    port = hub.proxy_api_url.rsplit(":", 1)[1]
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"--api-port" in cmdline and port.encode() in cmdline:
            return int(entry.name)
    return None


def _routes_when_up(hub: Hub) -> dict:
    try:
        return hub.routes()
    except requests.ConnectionError:
        return {}


def test_routes_come_back_after_chp_restarts(hub: Hub) -> None:
    hub.api("POST", "/users/olga")
    assert hub.api("POST", "/users/olga/server").status_code == 201
    token = hub.token("olga")
    old = _proxy_pid(hub)
    assert old is not None
    subprocess.run(["kill", "-9", str(old)], check=True)
    # The supervisor restarts CHP (empty table); the reconcile loop restores routes.
    wait_for(lambda: _proxy_pid(hub) not in (None, old), timeout=20)
    wait_for(lambda: "/user/olga" in _routes_when_up(hub), timeout=20)
    status = hub.get("/user/olga/api/status", headers={"Authorization": f"token {token}"})
    assert status.status_code == 200 and status.json()["user"] == "olga"
    assert hub.api("DELETE", "/users/olga/server").status_code == 204


def test_servers_survive_a_hub_restart(hub_factory) -> None:  # type: ignore[no-untyped-def]
    hub = hub_factory(cleanup_servers=False)
    hub.api("POST", "/users/pia")
    assert hub.api("POST", "/users/pia/server").status_code == 201
    pid = _server_pid(hub, "pia")
    hub.restart()  # a new hub and a new CHP; the server process lives on
    assert pid_alive(pid)
    wait_for(lambda: "/user/pia" in hub.routes(), timeout=20)
    assert hub.api("GET", "/users/pia").json()["server"] == "/user/pia/"
    assert _server_pid(hub, "pia") == pid
    assert hub.api("DELETE", "/users/pia/server").status_code == 204
    wait_for(lambda: not pid_alive(pid), timeout=10)
