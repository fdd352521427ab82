"""The built-in single-user server, against a tiny stand-in hub on a real loopback port."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from flask import Flask, jsonify, request
from flask.testing import FlaskClient
from werkzeug.serving import make_server

from app.singleuser.activity import ActivityTracker, run_activity_loop
from app.singleuser.auth import safe_next
from app.singleuser.config import (
    JUPYTERHUB_VERSION,
    ConfigError,
    SingleUserSettings,
    settings_from_env,
)
from app.singleuser.hub import HubClient, TokenCache
from app.singleuser.server import create_app
from app.singleuser.services import EXTENSION, Services
from tests.helpers import REPO, free_port, wait_for

API_TOKEN = "server-api-token"
CLIENT_ID = "jupyterhub-user-alice"
PREFIX = "/user/alice/"
CALLBACK = "/user/alice/oauth_callback"
BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
ALICE = {"Authorization": "token alice-token"}
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")

# Tokens and OAuth codes the stand-in hub knows, with the scopes the hub reports for them.
OAUTH_SCOPES = ["access:servers!server=alice/", "access:servers!user=alice", "identify"]
HUB_TOKENS: dict[str, dict[str, Any]] = {
    "alice-token": {"kind": "user", "name": "alice", "scopes": ["access:servers!user=alice"]},
    "bob-token": {"kind": "user", "name": "bob", "scopes": ["access:servers!user=bob"]},
    "alice-oauth": {"kind": "user", "name": "alice", "scopes": OAUTH_SCOPES},
    "bob-oauth": {"kind": "user", "name": "bob", "scopes": ["access:servers!user=bob"]},
    "service-token": {"kind": "service", "name": "alice", "scopes": ["access:servers"]},
    # alice's, but limited to what cannot open her server.
    "alice-name-only": {"kind": "user", "name": "alice", "scopes": ["read:users:name!user=alice"]},
    "alice-activity-only": {
        "kind": "user",
        "name": "alice",
        "scopes": ["users:activity!user=alice"],
    },
    "alice-other-server": {
        "kind": "user",
        "name": "alice",
        "scopes": ["access:servers!server=alice/lab"],
    },
}
HUB_CODES = {"alice-code": "alice-oauth", "bob-code": "bob-oauth"}


class StandInHub:
    """What the stand-in hub was asked, and how it should answer activity reports."""

    def __init__(self) -> None:
        self.url = ""
        self.user_lookups: list[str] = []
        self.activity: list[tuple[str, Any]] = []
        self.activity_status = 200

    def reset(self) -> None:
        """Forget earlier requests."""
        self.user_lookups.clear()
        self.activity.clear()
        self.activity_status = 200


def make_hub_app(hub: StandInHub) -> Flask:
    """The three hub endpoints a single-user server calls, with fixed tokens and codes."""
    hub_app = Flask("stand_in_hub")

    @hub_app.get("/hub/api/user")
    def user() -> Any:
        token = request.headers.get("Authorization", "").removeprefix("token ")
        hub.user_lookups.append(token)
        if token not in HUB_TOKENS:
            return jsonify(status=403, message="Forbidden"), 403
        return jsonify(HUB_TOKENS[token])

    @hub_app.post("/hub/api/oauth2/token")
    def token() -> Any:
        form = request.form
        expected = {
            "grant_type": "authorization_code",
            "client_id": CLIENT_ID,
            "client_secret": API_TOKEN,
            "redirect_uri": CALLBACK,
        }
        if any(form.get(key) != value for key, value in expected.items()):
            return jsonify(error="invalid_client"), 403
        if form.get("code") not in HUB_CODES:
            return jsonify(error="invalid_grant", error_description="unknown code"), 400
        access = HUB_CODES[form["code"]]
        return jsonify(access_token=access, token_type="Bearer", scope=[])

    @hub_app.post("/hub/api/users/alice/activity")
    def activity() -> Any:
        hub.activity.append((request.headers.get("Authorization", ""), request.get_json()))
        return jsonify({}), hub.activity_status

    return hub_app


@pytest.fixture(scope="module")
def hub_server() -> Iterator[StandInHub]:
    """A stand-in hub served on 127.0.0.1 from a thread for the module's tests."""
    hub = StandInHub()
    server = make_server("127.0.0.1", 0, make_hub_app(hub), threaded=True)
    hub.url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield hub
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def hub(hub_server: StandInHub) -> StandInHub:
    """The stand-in hub with nothing recorded yet."""
    hub_server.reset()
    return hub_server


@pytest.fixture
def settings(hub: StandInHub) -> SingleUserSettings:
    """Settings of alice's server, talking to the stand-in hub."""
    return SingleUserSettings(
        user="alice",
        service_prefix=PREFIX,
        api_url=f"{hub.url}/hub/api",
        api_token=API_TOKEN,
        client_id=CLIENT_ID,
        oauth_callback_url=CALLBACK,
        service_url="http://127.0.0.1:50001/user/alice/",
        activity_url=f"{hub.url}/hub/api/users/alice/activity",
        listen_port=50001,
        access_scopes=("access:servers!server=alice/", "access:servers!user=alice"),
    )


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """alice's working directory, with two visible files and a hidden one."""
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "<b>bold&co.txt").write_text("x" * 2048)
    (tmp_path / ".hidden").write_text("secret")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def app(settings: SingleUserSettings, home: Path) -> Iterator[Flask]:
    """The single-user app; its hub connections are closed afterwards."""
    flask_app = create_app(settings)
    yield flask_app
    services_of(flask_app).hub.close()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A test client of the single-user app."""
    return app.test_client()


def services_of(flask_app: Flask) -> Services:
    """Return the app's services."""
    return flask_app.extensions[EXTENSION]


def begin_login(client: FlaskClient, path: str = PREFIX) -> str:
    """Visit `path` as a browser without a login; return the OAuth state it was sent with."""
    response = client.get(path, headers=BROWSER)
    assert response.status_code == 302
    return parse_qs(urlsplit(response.location).query)["state"][0]


def cookie_header(response: Any, name: str) -> str:
    """Return the Set-Cookie header of the named cookie."""
    matches = [h for h in response.headers.getlist("Set-Cookie") if h.startswith(f"{name}=")]
    assert len(matches) == 1, response.headers.getlist("Set-Cookie")
    return matches[0]


@pytest.mark.parametrize(
    ("path", "headers", "status"),
    [
        ("/user/alice/api/status", ALICE, 200),
        ("/user/alice/", ALICE, 200),
        ("/user/alice/api/status", {}, 403),
        ("/user/alice/api/status", {"Authorization": "token bob-token"}, 403),
        ("/user/alice/", BROWSER, 302),
        ("/user/alice/nothing-here", ALICE, 404),
        ("/elsewhere", ALICE, 404),
        ("/user/alice", ALICE, 308),
        ("/user/alice/oauth_callback", {}, 400),
    ],
)
def test_every_response_carries_the_version_and_forbids_framing(
    client: FlaskClient, path: str, headers: dict[str, str], status: int
) -> None:
    response = client.get(path, headers=headers)
    assert response.status_code == status
    assert response.headers["X-JupyterHub-Version"] == JUPYTERHUB_VERSION == "6.1.1"
    assert response.headers["Content-Security-Policy"] == "frame-ancestors 'none'"


def test_version_header_follows_the_settings(settings: SingleUserSettings, home: Path) -> None:
    flask_app = create_app(dataclasses.replace(settings, version="6.1.0"))
    try:
        response = flask_app.test_client().get("/elsewhere")
    finally:
        services_of(flask_app).hub.close()
    assert response.headers["X-JupyterHub-Version"] == "6.1.0"


@pytest.mark.parametrize("scheme", ["token", "Bearer", "TOKEN", "bearer"])
def test_owner_token_gets_status(client: FlaskClient, scheme: str) -> None:
    response = client.get(
        "/user/alice/api/status", headers={"Authorization": f"{scheme} alice-token"}
    )
    assert response.status_code == 200
    body = response.get_json()
    assert body["user"] == "alice"
    assert body["pid"] == os.getpid()
    assert body["files"] == ["<b>bold&co.txt", "notes.txt"]
    assert body["version"] == "6.1.1"
    assert ISO_Z.match(body["started"]), body["started"]


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("bob-token", "bob is not allowed to use alice's server"),
        ("service-token", "alice is not allowed to use alice's server"),
        ("no-such-token", "Invalid or expired token"),
        # The owner's own tokens, without the access scope of this server.
        ("alice-name-only", "does not grant access to the server"),
        ("alice-activity-only", "does not grant access to the server"),
        ("alice-other-server", "does not grant access to the server"),
    ],
)
def test_tokens_of_anyone_but_the_owner_are_refused(
    client: FlaskClient, token: str, message: str
) -> None:
    response = client.get("/user/alice/api/status", headers={"Authorization": f"token {token}"})
    assert response.status_code == 403
    assert response.get_json()["status"] == 403
    assert message in response.get_json()["message"]


def test_hub_answers_are_cached_per_token(client: FlaskClient, hub: StandInHub) -> None:
    for _ in range(3):
        assert client.get("/user/alice/api/status", headers=ALICE).status_code == 200
        bad = client.get("/user/alice/api/status", headers={"Authorization": "token nope"})
        assert bad.status_code == 403
    assert sorted(hub.user_lookups) == ["alice-token", "nope"]


def test_token_cache_expires_and_is_bounded() -> None:
    now = [0.0]
    cache = TokenCache(ttl=60, max_size=2, clock=lambda: now[0])
    cache.put("token-a", {"name": "alice"})
    cache.put("token-b", None)
    assert cache.get("token-a") == (True, {"name": "alice"})
    assert cache.get("token-b") == (True, None)
    cache.put("token-c", {"name": "carol"})
    assert len(cache) == 2
    assert cache.get("token-a") == (False, None)
    assert cache.get("token-b") == (True, None)
    now[0] = 61
    assert cache.get("token-c") == (False, None)
    assert not any("token" in key for key in cache._entries)  # keyed by hash, not token


def test_unreachable_hub_is_a_500(settings: SingleUserSettings, home: Path) -> None:
    closed = dataclasses.replace(settings, api_url=f"http://127.0.0.1:{free_port()}/hub/api")
    flask_app = create_app(closed)
    try:
        response = flask_app.test_client().get("/user/alice/api/status", headers=ALICE)
    finally:
        services_of(flask_app).hub.close()
    assert response.status_code == 500
    assert "Failed to reach the hub API" in response.get_json()["message"]


def test_browser_without_login_is_sent_to_authorize(client: FlaskClient, app: Flask) -> None:
    response = client.get("/user/alice/api/status?x=1", headers=BROWSER)
    assert response.status_code == 302
    location = urlsplit(response.location)
    assert location.path == "/hub/api/oauth2/authorize"
    assert "redirect_uri=%2Fuser%2Falice%2Foauth_callback" in location.query
    query = parse_qs(location.query)
    state = query.pop("state")[0]
    assert len(state) >= 16
    assert query == {
        "client_id": [CLIENT_ID],
        "redirect_uri": [CALLBACK],
        "response_type": ["code"],
    }
    header = cookie_header(response, "flaskhub-user-alice-oauth-state")
    assert "Path=/user/alice/" in header and "HttpOnly" in header and "SameSite=Lax" in header
    value = header.split(";")[0].split("=", 1)[1]
    saved = services_of(app).state_signer.loads(value)
    assert saved == {"state": state, "next": "/user/alice/api/status?x=1"}


def test_login_state_differs_per_attempt(client: FlaskClient) -> None:
    assert begin_login(client) != begin_login(client)


@pytest.mark.parametrize(
    ("method", "headers"),
    [
        ("GET", {}),
        ("GET", {"Accept": "application/json"}),
        ("GET", {"Accept": "*/*"}),
        ("HEAD", BROWSER),
    ],
)
def test_api_client_without_credentials_gets_403(
    client: FlaskClient, method: str, headers: dict[str, str]
) -> None:
    response = client.open("/user/alice/api/status", method=method, headers=headers)
    assert response.status_code == 403
    assert "Set-Cookie" not in response.headers
    if method == "GET":
        assert response.get_json()["status"] == 403


def test_oauth_login_sets_cookie_and_returns_to_next(client: FlaskClient) -> None:
    state = begin_login(client, "/user/alice/api/status?x=1")
    response = client.get(f"{CALLBACK}?code=alice-code&state={state}", headers=BROWSER)
    assert response.status_code == 302
    assert response.location == "/user/alice/api/status?x=1"
    header = cookie_header(response, "flaskhub-user-alice")
    assert "Path=/user/alice/" in header and "HttpOnly" in header and "SameSite=Lax" in header
    cleared = cookie_header(response, "flaskhub-user-alice-oauth-state")
    assert "Expires=Thu, 01 Jan 1970" in cleared
    page = client.get(PREFIX, headers=BROWSER)
    assert page.status_code == 200
    assert "<h1>Hello, alice</h1>" in page.text
    assert client.get("/user/alice/api/status").get_json()["user"] == "alice"


def test_index_lists_files_escaped_and_links_home(client: FlaskClient) -> None:
    page = client.get(PREFIX, headers=ALICE)
    assert "<title>Hello, alice</title>" in page.text
    assert "&lt;b&gt;bold&amp;co.txt" in page.text and "<b>bold" not in page.text
    assert "notes.txt" in page.text and "5 B" in page.text and "2.0 KB" in page.text
    assert ".hidden" not in page.text
    assert '<a href="/hub/home">' in page.text


@pytest.mark.parametrize("state", ["wrong", ""])
def test_callback_with_wrong_state_is_400(client: FlaskClient, state: str) -> None:
    begin_login(client)
    response = client.get(f"{CALLBACK}?code=alice-code&state={state}")
    assert response.status_code == 400
    assert "state" in response.get_json()["message"]
    assert "flaskhub-user-alice=" not in str(response.headers)


def test_callback_without_state_cookie_is_400(client: FlaskClient) -> None:
    response = client.get(f"{CALLBACK}?code=alice-code&state=anything", headers=BROWSER)
    assert response.status_code == 400
    assert "state mismatch" in response.text


def test_callback_for_another_user_is_403(client: FlaskClient) -> None:
    state = begin_login(client)
    response = client.get(f"{CALLBACK}?code=bob-code&state={state}", headers=BROWSER)
    assert response.status_code == 403
    assert "bob is not allowed to use alice&#39;s server" in response.text
    assert "flaskhub-user-alice=" not in str(response.headers.getlist("Set-Cookie"))
    assert client.get(PREFIX, headers=BROWSER).status_code == 302


def test_callback_with_unknown_code_is_403(client: FlaskClient) -> None:
    state = begin_login(client)
    response = client.get(f"{CALLBACK}?code=stolen&state={state}")
    assert response.status_code == 403
    assert "unknown code" in response.get_json()["message"]


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/user/alice/",
        "//evil.example/user/alice/",
        "/hub/admin",
        "/user/alicex/",
        "/user/alice/../bob/",
        "/user/alice/%2e%2e/bob/",
        "/user/alice/\\evil",
        "",
    ],
)
def test_next_outside_the_prefix_is_not_followed(
    client: FlaskClient, app: Flask, target: str
) -> None:
    signed = services_of(app).state_signer.dumps({"state": "s1", "next": target})
    client.set_cookie("flaskhub-user-alice-oauth-state", signed, path=PREFIX)
    response = client.get(f"{CALLBACK}?code=alice-code&state=s1")
    assert response.status_code == 302
    assert response.location == PREFIX


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/user/alice/", "/user/alice/"),
        ("/user/alice/api/status?x=1", "/user/alice/api/status?x=1"),
        ("/user/alice/a%20b", "/user/alice/a%20b"),
        ("/user/bob/", PREFIX),
        ("javascript:alert(1)", PREFIX),
        ("/user/alice/\r\nSet-Cookie: x=1", PREFIX),
    ],
)
def test_safe_next(target: str, expected: str) -> None:
    assert safe_next(target, PREFIX) == expected


def test_forged_login_cookie_is_ignored(client: FlaskClient) -> None:
    client.set_cookie("flaskhub-user-alice", "alice-token", path=PREFIX)
    assert client.get("/user/alice/api/status").status_code == 403
    assert client.get(PREFIX, headers=BROWSER).status_code == 302


def test_revoked_login_cookie_logs_in_again(client: FlaskClient, app: Flask) -> None:
    signed = services_of(app).login_signer.dumps("revoked-token")
    client.set_cookie("flaskhub-user-alice", signed, path=PREFIX)
    response = client.get(PREFIX, headers=BROWSER)
    assert response.status_code == 302
    assert "Expires=Thu, 01 Jan 1970" in cookie_header(response, "flaskhub-user-alice")


def test_only_authenticated_requests_count_as_activity(client: FlaskClient, app: Flask) -> None:
    tracker = services_of(app).tracker
    client.get("/user/alice/api/status", headers={"Authorization": "token bob-token"})
    assert tracker.last_activity is None
    client.get("/user/alice/api/status", headers=ALICE)
    assert tracker.last_activity is not None


def test_activity_is_reported_once_per_new_activity(hub: StandInHub) -> None:
    client = HubClient(f"{hub.url}/hub/api", API_TOKEN)
    tracker = ActivityTracker(client, f"{hub.url}/hub/api/users/alice/activity", "")
    try:
        assert tracker.report() is False
        tracker.touch()
        assert tracker.report() is True
        assert tracker.report() is False
    finally:
        client.close()
    assert len(hub.activity) == 1
    authorization, body = hub.activity[0]
    assert authorization == f"token {API_TOKEN}"
    stamp = body["last_activity"]
    assert ISO_Z.match(stamp)
    assert body == {"servers": {"": {"last_activity": stamp}}, "last_activity": stamp}


def test_failed_activity_report_is_retried(hub: StandInHub) -> None:
    hub.activity_status = 500
    client = HubClient(f"{hub.url}/hub/api", API_TOKEN)
    tracker = ActivityTracker(client, f"{hub.url}/hub/api/users/alice/activity", "")
    try:
        tracker.touch()
        assert tracker.report() is False
        hub.activity_status = 200
        assert tracker.report() is True
    finally:
        client.close()
    assert len(hub.activity) == 2


def test_activity_loop_waits_then_reports_and_survives_errors() -> None:
    delays: list[float] = []
    reports: list[int] = []

    class FlakyTracker:
        def report(self) -> bool:
            reports.append(1)
            raise RuntimeError("boom")

    def sleep(seconds: float) -> None:
        if len(delays) == 3:
            raise KeyboardInterrupt  # stop the endless loop
        delays.append(seconds)

    with pytest.raises(KeyboardInterrupt):
        run_activity_loop(FlakyTracker(), sleep)  # type: ignore[arg-type]
    assert delays == [10, 300, 300]
    assert len(reports) == 3


BASE_ENV = {
    "JUPYTERHUB_USER": "alice",
    "JUPYTERHUB_SERVICE_PREFIX": "/user/alice",
    "JUPYTERHUB_SERVICE_URL": "http://127.0.0.1:51234/user/alice/",
    "JUPYTERHUB_API_URL": "http://127.0.0.1:8081/hub/api/",
    "JUPYTERHUB_API_TOKEN": API_TOKEN,
    "JUPYTERHUB_CLIENT_ID": CLIENT_ID,
    "JUPYTERHUB_OAUTH_CALLBACK_URL": CALLBACK,
    "JUPYTERHUB_BASE_URL": "/",
    "JUPYTERHUB_HOST": "",
    "JUPYTERHUB_ACTIVITY_URL": "http://127.0.0.1:8081/hub/api/users/alice/activity",
}


def test_settings_from_env() -> None:
    settings = settings_from_env(BASE_ENV)
    assert settings.service_prefix == PREFIX
    assert settings.api_url == "http://127.0.0.1:8081/hub/api"
    assert (settings.listen_host, settings.listen_port) == ("127.0.0.1", 51234)
    assert settings.version == "6.1.1"
    assert settings.public_url == "http://127.0.0.1:51234/user/alice/"
    assert settings.authorize_url == "/hub/api/oauth2/authorize"
    # Without JUPYTERHUB_OAUTH_ACCESS_SCOPES: this server's own, as JupyterHub derives them.
    assert settings.access_scopes == ("access:servers!server=alice/", "access:servers!user=alice")


def test_access_scopes_from_env() -> None:
    scopes = '["access:servers!server=alice/lab", "access:servers!user=alice"]'
    env = {**BASE_ENV, "JUPYTERHUB_OAUTH_ACCESS_SCOPES": scopes}
    assert settings_from_env(env).access_scopes == (
        "access:servers!server=alice/lab",
        "access:servers!user=alice",
    )
    for bad in ("not json", '"access:servers"', "[1]"):
        with pytest.raises(ConfigError, match="JUPYTERHUB_OAUTH_ACCESS_SCOPES"):
            settings_from_env({**BASE_ENV, "JUPYTERHUB_OAUTH_ACCESS_SCOPES": bad})


@pytest.mark.parametrize(
    ("extra", "kwargs", "port", "version"),
    [
        ({"JUPYTERHUB_SERVICE_PORT": "40000"}, {}, 40000, "6.1.1"),
        ({"JUPYTERHUB_SERVICE_PORT": "40000"}, {"port": 40001}, 40001, "6.1.1"),
        ({"FLASKHUB_SINGLEUSER_VERSION": "5.9.9"}, {}, 51234, "5.9.9"),
    ],
)
def test_settings_overrides(
    extra: dict[str, str], kwargs: dict[str, Any], port: int, version: str
) -> None:
    settings = settings_from_env({**BASE_ENV, **extra}, **kwargs)
    assert (settings.listen_port, settings.version) == (port, version)


@pytest.mark.parametrize(
    "environ",
    [
        {**BASE_ENV, "JUPYTERHUB_SERVICE_PORT": "http"},
        {**BASE_ENV, "JUPYTERHUB_SERVICE_URL": "http://127.0.0.1/user/alice/"},
        {**BASE_ENV, "JUPYTERHUB_SERVICE_URL": "http://127.0.0.1:port/user/alice/"},
    ],
)
def test_settings_rejects_unusable_ports(environ: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="JUPYTERHUB_SERVICE_(URL|PORT)"):
        settings_from_env(environ)


def process_env(environ: dict[str, str]) -> dict[str, str]:
    """Return a clean environment for a server process: no inherited JUPYTERHUB_*."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTERHUB_")}
    return {**inherited, "PYTHONPATH": str(REPO), **environ}


RUN_MAIN = ["-c", "import app.singleuser as s; s.main()"]


@pytest.mark.process
@pytest.mark.parametrize(
    "missing", ["JUPYTERHUB_USER", "JUPYTERHUB_API_TOKEN", "JUPYTERHUB_SERVICE_URL"]
)
def test_missing_variable_exits_2_naming_it(tmp_path: Path, missing: str) -> None:
    environ = {k: v for k, v in BASE_ENV.items() if k != missing}
    result = subprocess.run(
        [sys.executable, *RUN_MAIN],
        env=process_env(environ),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert f"missing required environment variable {missing}" in result.stderr


@pytest.mark.process
def test_real_process_serves_the_owner_and_stops_on_sigterm(
    tmp_path: Path, hub: StandInHub
) -> None:
    port = free_port()
    (tmp_path / "data.csv").write_text("a,b\n")
    environ = {
        **BASE_ENV,
        "JUPYTERHUB_SERVICE_URL": f"http://127.0.0.1:{port}/user/alice/",
        "JUPYTERHUB_API_URL": f"{hub.url}/hub/api",
        "JUPYTERHUB_ACTIVITY_URL": f"{hub.url}/hub/api/users/alice/activity",
    }
    proc = subprocess.Popen(
        [sys.executable, *RUN_MAIN],
        env=process_env(environ),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        response = wait_for_status(proc, f"http://127.0.0.1:{port}/user/alice/api/status")
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert response.status_code == 200
    assert response.headers["X-JupyterHub-Version"] == "6.1.1"
    assert response.json()["files"] == ["data.csv"]
    assert response.json()["pid"] == proc.pid
    assert proc.returncode == 0, stderr
    assert f"FlaskHub single-user server for alice at http://127.0.0.1:{port}/user/alice/" in stderr
    assert "MonkeyPatchWarning" not in stderr


def wait_for_status(proc: subprocess.Popen[str], url: str) -> requests.Response:
    """Poll `url` with the owner's token until the server answers (15 s at most)."""
    answers: list[requests.Response] = []

    def answered() -> bool:
        assert proc.poll() is None, "server exited early"
        with contextlib.suppress(requests.ConnectionError):
            answers.append(requests.get(url, headers=ALICE, timeout=5))
        return bool(answers)

    wait_for(answered, timeout=15)
    return answers[0]
