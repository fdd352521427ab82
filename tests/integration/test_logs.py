"""What an operator reads: `flaskhub run`'s output, one line format throughout.

Every log line, the hub's own, gunicorn's and the access lines alike, reads
``[L <ISO time with ms and offset> <pid> <user or -> <logger>] <message>``.
"""

from __future__ import annotations

import re
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from tests.helpers import wait_for
from tests.integration.conftest import FLASKHUB, Hub, hub_env, login

pytestmark = pytest.mark.integration

LINE = re.compile(
    r"\[(?P<level>[DIWEC]) "
    r"(?P<time>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d) "
    r"(?P<pid>\d+) (?P<user>\S+) (?P<logger>[\w.]+)\] (?P<message>.*)"
)
# What `flaskhub run` says to the person who ran it, not log lines.
ANNOUNCEMENTS = re.compile(r"FlaskHub is running: open \S+ \(Ctrl-C to stop\)|FlaskHub stopped\.")


@pytest.fixture(scope="module")
def hub(hub_factory: Callable[..., Hub]) -> Hub:
    return hub_factory(
        spawner="tests.spawners:FaultSpawner", poll_interval=1, allow_named_servers=True
    )


def _records(text: str) -> list[re.Match[str]]:
    """The log lines of text; every other line must be an announcement or continue a
    multi-line message of the line before (alembic's migration names, a traceback)."""
    records: list[re.Match[str]] = []
    for line in text.splitlines():
        match = LINE.fullmatch(line)
        if match:
            records.append(match)
        else:
            assert ANNOUNCEMENTS.fullmatch(line) or (
                records and records[-1]["logger"] == "alembic.runtime.migration"
            ), f"a line in no known format: {line!r}"
    return records


def _access(hub: Hub, since: int = 0) -> list[re.Match[str]]:
    return [r for r in _records(hub.log()[since:]) if r["logger"] == "gunicorn.access"]


def _after(hub: Hub, action: Callable[[], object]) -> int:
    """Run action; return where the log stood before it."""
    seen = len(hub.log())
    action()
    return seen


def test_every_line_has_one_timestamped_format(hub: Hub) -> None:
    seen = _after(hub, lambda: hub.api("GET", "/users"))
    # gunicorn writes the access line after the response: wait for it first.
    line = wait_for(
        lambda: [r for r in _access(hub, seen) if '"GET /hub/api/users HTTP/1.1" 200' in r[0]]
    )[0]
    records = _records(hub.log())
    loggers = {r["logger"] for r in records}
    # The hub's own lines, gunicorn's and the access lines: one format.
    assert {"gunicorn.error", "gunicorn.access", "proxy.launcher"} <= loggers, loggers
    booted = [r for r in records if r["message"].startswith("Booting worker")]
    assert booted and booted[0]["pid"] != str(hub.process.pid)
    assert line["user"] == "admin"
    assert line["pid"] == booted[0]["pid"]  # the worker that served it
    assert abs(time.time() - _epoch(line["time"])) < 60


def _epoch(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso).timestamp()


def test_the_request_user_is_on_access_and_app_lines(hub: Hub) -> None:
    hub.api("POST", "/users/logan")
    seen = _after(hub, lambda: hub.api("POST", "/users/logan/server"))
    ready = wait_for(lambda: [r for r in _records(hub.log()[seen:]) if "ready at" in r["message"]])[
        0
    ]
    # Said by the spawn, for the request that asked for it.
    assert ready["user"] == "admin", ready[0]
    anonymous = _after(hub, lambda: hub.get("/hub/api"))
    line = wait_for(lambda: [r for r in _access(hub, anonymous) if "GET /hub/api " in r[0]])[0]
    assert line["user"] == "-"
    session = login(hub, "logan")
    seen = _after(hub, lambda: session.get(f"{hub.public_url}/hub/home", timeout=30))
    home = wait_for(lambda: [r for r in _access(hub, seen) if "GET /hub/home " in r[0]])[0]
    assert home["user"] == "logan"
    hub.api("DELETE", "/users/logan/server")


def test_successful_health_checks_are_not_logged(hub: Hub) -> None:
    seen = len(hub.log())
    for path in ("/hub/health", "/hub/api/health"):
        for _ in range(3):
            assert hub.get(path).status_code == 200
    # A request after them: its line is written once theirs would have been.
    hub.get("/hub/api")
    wait_for(lambda: [r for r in _access(hub, seen) if "GET /hub/api " in r[0]])
    assert not [r[0] for r in _access(hub, seen) if "health" in r["message"]]
    # A failed one is: here a method the check does not allow.
    seen = len(hub.log())
    assert hub.http.post(f"{hub.public_url}/hub/health", timeout=30).status_code == 405
    wait_for(lambda: [r for r in _access(hub, seen) if '"POST /hub/health HTTP/1.1" 405' in r[0]])


def _running(hub: Hub, name: str, server: str = "") -> None:
    path = f"/users/{name}/servers/{server}" if server else f"/users/{name}/server"
    hub.api("POST", f"/users/{name}")
    assert hub.api("POST", path).status_code == 201


def test_a_stop_says_whose_server_who_asked_and_how_long(hub: Hub) -> None:
    _running(hub, "stella")
    _running(hub, "stella", "gpu")
    seen = _after(hub, lambda: hub.api("DELETE", "/users/stella/servers/gpu"))
    hub.api("DELETE", "/users/stella/server", token=hub.token("stella"))
    stops = wait_for(
        lambda: (
            [r for r in _records(hub.log()[seen:]) if r["message"].startswith("Stopped server")]
            if len(hub.log()[seen:].split("Stopped server")) > 2
            else None
        )
    )
    assert [r["level"] for r in stops] == ["I", "I"]
    assert re.fullmatch(
        r"Stopped server 'gpu' of stella \(asked by admin\) in \d+\.\d s", stops[0]["message"]
    ), stops[0]["message"]
    assert re.fullmatch(
        r"Stopped server of stella \(asked by stella\) in \d+\.\d s", stops[1]["message"]
    ), stops[1]["message"]


def test_a_stop_of_the_watched_server_is_no_lost_route(hub: Hub) -> None:
    # The only running server is the one the reconcile loop watches for a restarted proxy.
    for name in _running_servers(hub):
        hub.api("DELETE", f"/users/{name}/server")
    for name in ("watched", "watched-again"):
        _running(hub, name)
        # Long enough for the loop to pick it (every tick, 1 s) and check its route.
        time.sleep(2.5)
        seen = len(hub.log())
        hub.api("DELETE", f"/users/{name}/server")
        time.sleep(3)
        assert "The proxy lost the route" not in hub.log()[seen:], hub.log()[seen:]
        assert "missing from the proxy" not in hub.log()[seen:]


def _running_servers(hub: Hub) -> list[str]:
    return [
        user["name"]
        for user in hub.api("GET", "/users").json()
        if (user["servers"].get("") or {}).get("ready")
    ]


def test_a_lost_route_is_still_noticed(hub: Hub) -> None:
    _running(hub, "lost")
    time.sleep(2.5)
    token = (hub.data_dir / "proxy_auth_token").read_text().strip()
    seen = len(hub.log())
    requests.delete(
        f"{hub.proxy_api_url}/api/routes/user/lost",
        headers={"Authorization": f"token {token}"},
        timeout=10,
    )
    wait_for(lambda: "/user/lost" in hub.routes(), timeout=15)
    # Noticed by the loop's watch on it within a tick or two, unless the full check
    # (every 5 s) came first: either says so, naming the route.
    said = (
        "The proxy lost the route /user/lost/ (restarted?)",
        "Route /user/lost/ missing from the proxy",
    )
    wait_for(lambda: any(line in hub.log()[seen:] for line in said), timeout=15)
    hub.api("DELETE", "/users/lost/server")


def test_a_failed_spawn_names_the_user_and_server(hub: Hub) -> None:
    hub.api("POST", "/users/fail-sam")
    seen = _after(hub, lambda: hub.api("POST", "/users/fail-sam/servers/big"))
    failed = wait_for(lambda: [r for r in _records(hub.log()[seen:]) if "failed" in r["message"]])[
        0
    ]
    assert failed["level"] == "E"
    assert failed["message"] == (
        "Spawn of server 'big' of fail-sam failed: Injected failure for fail-sam"
    )


@pytest.mark.parametrize(
    ("setting", "variable"),
    [
        ("hub_port", "FLASKHUB_HUB_PORT"),
        ("port", "FLASKHUB_PORT"),
        ("proxy_api_port", "FLASKHUB_PROXY_API_PORT"),
    ],
)
def test_a_port_in_use_is_one_line_naming_the_setting(
    tmp_path: Path, setting: str, variable: str
) -> None:
    env = hub_env(tmp_path / "data")
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.bind(("127.0.0.1", int(env[variable])))
        taken.listen()
        t0 = time.monotonic()
        done = subprocess.run(
            [FLASKHUB, "run"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
        )
    assert done.returncode != 0
    assert time.monotonic() - t0 < 15
    output = done.stdout + done.stderr
    assert "Traceback" not in output and "Connection in use" not in output, output
    address = f"127.0.0.1:{env[variable]}"
    said = [line for line in output.splitlines() if address in line]
    assert len(said) == 1, output
    assert setting in said[0] and variable in said[0] and "in use" in said[0], said[0]


def test_an_address_not_of_this_host_names_the_ip_setting(tmp_path: Path) -> None:
    env = hub_env(tmp_path / "data", hub_ip="192.0.2.1")  # TEST-NET-1: no host has it
    done = subprocess.run(
        [FLASKHUB, "run"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        f"Error: Cannot listen on 192.0.2.1:{env['FLASKHUB_HUB_PORT']}: 192.0.2.1 is no "
        "address of this host. Set hub_ip (FLASKHUB_HUB_IP) to one."
    )
