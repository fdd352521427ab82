"""app/spawners/local.py with real child processes (small `python -c` programs), as the
hub's own account (`simple`); tests/unit/test_accounts.py runs them as system accounts."""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from app.config import load
from app.spawners import local
from app.spawners.base import SpawnerError
from app.spawners.local import SimpleLocalProcessSpawner, process_start_time
from tests.helpers import wait_for

pytestmark = pytest.mark.process

SLEEPER = "import time; time.sleep(60)"
# Writes its environment to ./env.json (atomically), then sleeps.
RECORDER = (
    "import json, os, time;"
    "json.dump(dict(os.environ), open('env.tmp', 'w'));"
    "os.rename('env.tmp', 'env.json');"
    "time.sleep(60)"
)
# Ignores SIGTERM; ./ready says the handler is in place.
STUBBORN = (
    "import signal, time;"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN);"
    "open('ready', 'w').close();"
    "time.sleep(60)"
)
EXITS_3 = "print('about to exit', flush=True); raise SystemExit(3)"

MakeSpawner = Callable[..., SimpleLocalProcessSpawner]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def make_spawner(data_dir: Path) -> Iterator[MakeSpawner]:
    """make_spawner(code, user="alice", cmd=None): a spawner running `python -c code`.

    Every process a spawner started is killed and reaped at the end of the test, and
    its CPU group removed.
    """
    made: list[SimpleLocalProcessSpawner] = []

    def _make(
        code: str = SLEEPER, user: str = "alice", cmd: list[str] | None = None
    ) -> SimpleLocalProcessSpawner:
        settings = load(
            environ={},
            overrides={
                "data_dir": str(data_dir),
                "spawner_cmd": cmd or [sys.executable, "-c", code],
            },
        )
        spawner = SimpleLocalProcessSpawner(
            user_name=user,
            server_name="",
            service_prefix=f"/user/{user}/",
            settings=settings,
            storage_id=f"id-of-{user}",
        )
        made.append(spawner)
        return spawner

    yield _make
    for proc in [s.proc for s in made if s.proc is not None]:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            wait_for(lambda p=proc: p.poll() is not None)
    for spawner in made:
        spawner.stop(now=True)  # ended: removes its CPU group


@pytest.fixture
def fast_stop(monkeypatch: pytest.MonkeyPatch) -> float:
    """A short SIGTERM grace period, so SIGKILL tests take a second, not five."""
    monkeypatch.setattr(local, "STOP_GRACE_SECONDS", 0.5)
    return 0.5


def test_start_returns_a_loopback_url(make_spawner: MakeSpawner) -> None:
    spawner = make_spawner()
    url = spawner.start()
    match = re.fullmatch(r"http://127\.0\.0\.1:(\d+)", url)
    assert match is not None, url
    assert int(match.group(1)) == spawner.port
    assert spawner.poll() is None


def test_a_port_handed_out_is_not_handed_out_again_while_its_server_starts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The system may offer the same free port twice before the first server binds it,
    to this worker or to another."""
    offered = [41001, 41001, 41002]  # what the system offers next, in turn

    class Offering(socket.socket):
        def getsockname(self) -> tuple[str, int]:
            return ("127.0.0.1", offered.pop(0))

    monkeypatch.setattr(local.socket, "socket", Offering)
    monkeypatch.setattr(local, "_handed_out_here", itertools.count(1))  # no sweep
    assert local.free_port(str(tmp_path)) == 41001
    assert local.free_port(str(tmp_path)) == 41002  # 41001 offered again: refused
    # Another worker of the same hub (a process forked from this one) refuses both.
    worker = os.fork()
    if worker == 0:
        try:
            offered[:] = [41001, 41002, 41003]
            os._exit(0 if local.free_port(str(tmp_path)) == 41003 else 1)
        finally:
            os._exit(2)
    _, status = os.waitpid(worker, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    marks = tmp_path / "ports"
    assert sorted(p.name for p in marks.iterdir() if p.name.isdigit()) == [
        "41001",
        "41002",
        "41003",
    ]
    # Long after, a port may be handed out again.
    long_ago = time.time() - local.HANDED_OUT_SECONDS - 1
    os.utime(marks / "41001", (long_ago, long_ago))
    offered[:] = [41001]
    assert local.free_port(str(tmp_path)) == 41001
    # Now and then the marks of long ago are swept away, and only those.
    os.utime(marks / "41002", (long_ago, long_ago))
    monkeypatch.setattr(local, "_handed_out_here", itertools.count(0))
    offered[:] = [41004]
    assert local.free_port(str(tmp_path)) == 41004
    assert sorted(p.name for p in marks.iterdir() if p.name.isdigit()) == [
        "41001",
        "41003",
        "41004",
    ]


def test_environment_has_the_hub_variables_and_not_its_secrets(
    make_spawner: MakeSpawner, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONFIGPROXY_AUTH_TOKEN", "proxy-secret")
    monkeypatch.setenv("FLASKHUB_COOKIE_SECRET", "cookie-secret")
    monkeypatch.setenv("LANG", "C.UTF-8")
    spawner = make_spawner(RECORDER)
    spawner.env = {"JUPYTERHUB_API_TOKEN": "server-token", "JUPYTERHUB_USER": "alice"}
    url = spawner.start()

    env_file = data_dir / "home" / "id-of-alice" / "env.json"
    wait_for(env_file.exists)
    env = json.loads(env_file.read_text())
    assert env["JUPYTERHUB_API_TOKEN"] == "server-token"
    assert env["JUPYTERHUB_USER"] == "alice"
    assert env["JUPYTERHUB_SERVICE_URL"] == url + "/user/alice/"
    assert env["JUPYTERHUB_SERVICE_PORT"] == str(spawner.port)
    assert env["LANG"] == "C.UTF-8"
    assert "CONFIGPROXY_AUTH_TOKEN" not in env
    assert not any(name.startswith("FLASKHUB_") for name in env)
    assert not {"proxy-secret", "cookie-secret"} & set(env.values())


def test_runs_in_the_users_directory_in_its_own_session(
    make_spawner: MakeSpawner, data_dir: Path
) -> None:
    spawner = make_spawner()
    spawner.start()
    assert spawner.pid is not None
    home = data_dir / "home" / "id-of-alice"
    # The server starts in its directory (the worker's for the call), the worker stays.
    wait_for(lambda: Path(f"/proc/{spawner.pid}/cwd").resolve() == home.resolve())
    assert os.getsid(spawner.pid) == spawner.pid
    assert os.getsid(spawner.pid) != os.getsid(0)


def test_poll_reports_the_exit_status_and_output_goes_to_the_log(
    make_spawner: MakeSpawner, data_dir: Path
) -> None:
    spawner = make_spawner(EXITS_3)
    spawner.start()
    wait_for(lambda: spawner.poll() is not None)
    assert spawner.poll() == 3
    assert "about to exit" in (data_dir / "logs" / "alice.log").read_text()


def test_poll_without_a_server(make_spawner: MakeSpawner) -> None:
    spawner = make_spawner()
    assert spawner.poll() == 0
    spawner.stop()  # nothing to stop: returns at once


def test_stop_ends_the_process_with_sigterm(make_spawner: MakeSpawner) -> None:
    spawner = make_spawner()
    spawner.start()
    started = time.monotonic()
    spawner.stop()
    assert spawner.poll() == -signal.SIGTERM
    assert time.monotonic() - started < 2


def test_stop_kills_a_process_that_ignores_sigterm(
    make_spawner: MakeSpawner, data_dir: Path, fast_stop: float
) -> None:
    spawner = make_spawner(STUBBORN)
    spawner.start()
    wait_for((data_dir / "home" / "id-of-alice" / "ready").exists)
    started = time.monotonic()
    spawner.stop()
    elapsed = time.monotonic() - started
    assert spawner.poll() == -signal.SIGKILL
    assert fast_stop <= elapsed < fast_stop + 2


def test_stop_now_does_not_wait_for_the_grace_period(
    make_spawner: MakeSpawner, data_dir: Path
) -> None:
    spawner = make_spawner(STUBBORN)
    spawner.start()
    wait_for((data_dir / "home" / "id-of-alice" / "ready").exists)
    started = time.monotonic()
    spawner.stop(now=True)
    assert spawner.poll() == -signal.SIGKILL
    assert time.monotonic() - started < 2


def restarted(make_spawner: MakeSpawner, state: dict) -> SimpleLocalProcessSpawner:
    """A new spawner object given stored state, as after a hub restart."""
    spawner = make_spawner()
    spawner.load_state(json.loads(json.dumps(state)))
    return spawner


def test_state_lets_a_new_spawner_poll_and_stop_the_server(make_spawner: MakeSpawner) -> None:
    first = make_spawner()
    first.start()
    assert first.proc is not None
    state = first.get_state()
    assert state == {"pid": first.pid, "port": first.port, "started_at": first.started_at}

    second = restarted(make_spawner, state)
    assert (second.pid, second.port) == (first.pid, first.port)
    assert second.poll() is None
    second.stop()
    assert second.poll() == 0  # not its child: the status is unknown
    wait_for(lambda: first.proc is not None and first.proc.poll() is not None)
    assert first.proc.poll() == -signal.SIGTERM


def test_a_new_spawner_kills_a_server_that_ignores_sigterm(
    make_spawner: MakeSpawner, data_dir: Path, fast_stop: float
) -> None:
    first = make_spawner(STUBBORN)
    first.start()
    assert first.proc is not None
    wait_for((data_dir / "home" / "id-of-alice" / "ready").exists)
    second = restarted(make_spawner, first.get_state())
    second.stop()
    assert second.poll() == 0
    wait_for(lambda: first.proc is not None and first.proc.poll() is not None)
    assert first.proc.poll() == -signal.SIGKILL


def test_state_detects_a_reused_pid(make_spawner: MakeSpawner) -> None:
    first = make_spawner()
    first.start()
    assert first.pid is not None
    assert first.started_at == process_start_time(first.pid)
    state = {**first.get_state(), "started_at": first.started_at + 1}

    other = restarted(make_spawner, state)
    assert other.poll() == 0
    other.stop()
    # The process under that pid is someone else's now: it must not be signalled.
    assert first.poll() is None


def test_state_of_a_process_that_is_gone(make_spawner: MakeSpawner) -> None:
    first = make_spawner()
    first.start()
    state = first.get_state()
    first.stop()
    assert restarted(make_spawner, state).poll() == 0


def test_clear_state_forgets_the_server(make_spawner: MakeSpawner) -> None:
    spawner = make_spawner()
    spawner.start()
    spawner.stop()
    spawner.clear_state()
    assert spawner.get_state() == {"pid": None, "port": None, "started_at": None}
    assert spawner.poll() == 0


def test_missing_command_is_a_clear_error(make_spawner: MakeSpawner) -> None:
    spawner = make_spawner(cmd=["no-such-flaskhub-command", "--port"])
    events: list[dict[str, object]] = []
    spawner.on_progress = events.append
    with pytest.raises(SpawnerError, match="command 'no-such-flaskhub-command' not found"):
        spawner.start()
    assert spawner.pid is None
    # The steps done before it stopped are on the progress page; none after.
    assert [e["message"] for e in events] == ["Server runs as the hub's own account"]


def test_start_reports_its_steps_with_rising_progress(make_spawner: MakeSpawner) -> None:
    spawner = make_spawner()
    events: list[dict[str, object]] = []
    spawner.on_progress = events.append
    spawner.start()
    assert events == [
        {"progress": 10, "message": "Server runs as the hub's own account"},
        {
            "progress": 20,
            "message": f"Environment checked: home folder ready, {Path(sys.executable).name} found",
        },
        {
            "progress": 50,
            "message": f"Server process started (pid {spawner.pid}, port {spawner.port})",
        },
    ]


def test_progress_never_goes_back(make_spawner: MakeSpawner) -> None:
    """A subclass's steps (here 75) before the local spawner's own (10, 20, 50)."""
    spawner = make_spawner()
    events: list[dict[str, object]] = []
    spawner.on_progress = events.append
    spawner.report_progress(75, "A step of a subclass")
    spawner.start()
    assert [e["progress"] for e in events] == [75, 75, 75, 75]


@pytest.mark.parametrize("keep", [True, False])
def test_delete_forever_keeps_or_removes_the_home(data_dir: Path, keep: bool) -> None:
    settings = load(environ={}, overrides={"data_dir": str(data_dir), "keep_user_files": keep})
    spawner = SimpleLocalProcessSpawner(
        user_name="gone",
        server_name="",
        service_prefix="/user/gone/",
        settings=settings,
        storage_id="id-of-gone",
    )
    spawner.home.mkdir(parents=True)
    (spawner.home / "notes.txt").write_text("x")
    spawner.delete_forever()
    assert spawner.home == data_dir / "home" / "id-of-gone"
    assert spawner.home.exists() is keep


def test_the_start_time_is_read_before_the_server_is_put_after_the_hub(
    make_spawner: MakeSpawner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reading /proc/<pid>/stat waits while the new process loads its program: once it
    is niced and in the servers' CPU group, that waits for its turn among every
    starting server, and the worker serves no one meanwhile."""
    steps: list[str] = []

    def recorded(name: str, real: Callable[..., object]) -> Callable[..., object]:
        def call(*args: object) -> object:
            steps.append(name)
            return real(*args)

        return call

    monkeypatch.setattr(
        local, "process_start_time", recorded("start time", local.process_start_time)
    )
    monkeypatch.setattr(local, "lower_priority", recorded("nice", local.lower_priority))
    monkeypatch.setattr(local.cpu, "place", recorded("group", local.cpu.place))
    spawner = make_spawner()
    spawner.start()
    assert steps == ["start time", "nice", "group"]
    assert spawner.pid is not None
    assert spawner.started_at == process_start_time(spawner.pid)
