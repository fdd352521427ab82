"""What an operator reads: `flaskhub run`'s output, one line format throughout.

Every log line, the hub's own, gunicorn's and the access lines alike, reads
``[L <ISO time with ms and offset> <pid> <user or -> <logger>] <message>``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import pytest

from tests.helpers import wait_for
from tests.integration.conftest import Hub, login

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
    records = _records(hub.log())
    loggers = {r["logger"] for r in records}
    # The hub's own lines, gunicorn's and the access lines: one format.
    assert {"gunicorn.error", "gunicorn.access", "proxy.launcher"} <= loggers, loggers
    booted = [r for r in records if r["message"].startswith("Booting worker")]
    assert booted and booted[0]["pid"] != str(hub.process.pid)
    line = wait_for(
        lambda: [r for r in _access(hub, seen) if '"GET /hub/api/users HTTP/1.1" 200' in r[0]]
    )[0]
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
