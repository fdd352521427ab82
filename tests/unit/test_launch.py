"""app/spawners/launch.py: a server started with posix_spawn gets its directory,
session, environment and output, and nothing else of the hub's process."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.spawners.launch import Child, spawn
from tests.helpers import wait_for

pytestmark = pytest.mark.process

SIGPIPE_BIT = 1 << (signal.SIGPIPE - 1)


@pytest.fixture
def started() -> Iterator[list[Child]]:
    """The children a test starts; each is killed and reaped at the end."""
    children: list[Child] = []
    yield children
    for child in children:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            wait_for(lambda c=child: c.poll() is not None)


def run(started: list[Child], program: list[str], tmp_path: Path) -> Child:
    with (tmp_path / "out.log").open("ab") as log:
        child = spawn(program, {"PATH": "/usr/bin:/bin", "ONLY": "this"}, tmp_path, log.fileno())
    started.append(child)
    return child


def test_a_descriptor_the_hub_could_pass_on_is_closed(started: list[Child], tmp_path: Path) -> None:
    read, write = os.pipe()
    # A descriptor without close-on-exec, as a library or the parent might leave one: a
    # free one (a fixed number could be a socket of the session's, closed behind its back).
    left_open = os.dup(write)
    os.set_inheritable(left_open, True)
    try:
        code = "import os; print(sorted(int(f) for f in os.listdir('/proc/self/fd')))"
        child = run(started, [sys.executable, "-c", code], tmp_path)
        wait_for(lambda: child.poll() is not None)
    finally:
        os.close(left_open)
        os.close(read)
        os.close(write)
    assert child.poll() == 0
    # 0, 1 and 2, and the listing's own descriptor.
    assert (tmp_path / "out.log").read_text().strip() == "[0, 1, 2, 3]"


def test_directory_session_environment_stdin_and_signals(
    started: list[Child], tmp_path: Path
) -> None:
    child = run(started, ["/bin/sleep", "60"], tmp_path)
    wait_for(lambda: Path(f"/proc/{child.pid}/cwd").resolve() == tmp_path.resolve())
    wait_for(lambda: Path(f"/proc/{child.pid}/exe").resolve() == Path("/bin/sleep").resolve())
    assert os.getsid(child.pid) == child.pid
    environ = Path(f"/proc/{child.pid}/environ").read_bytes().split(b"\0")
    assert sorted(filter(None, environ)) == [b"ONLY=this", b"PATH=/usr/bin:/bin"]
    assert os.readlink(f"/proc/{child.pid}/fd/0") == os.devnull
    # This Python ignores SIGPIPE; the server must not inherit that.
    assert signal.getsignal(signal.SIGPIPE) == signal.SIG_IGN
    status = Path(f"/proc/{child.pid}/status").read_text()
    ignored = int(
        next(line for line in status.splitlines() if line.startswith("SigIgn:")).split()[1], 16
    )
    assert not ignored & SIGPIPE_BIT
    assert child.poll() is None
    os.killpg(child.pid, signal.SIGTERM)
    wait_for(lambda: child.poll() is not None)
    assert child.poll() == -signal.SIGTERM


def test_exit_status_and_output(started: list[Child], tmp_path: Path) -> None:
    child = run(started, ["/bin/sh", "-c", "echo out; echo err >&2; exit 7"], tmp_path)
    wait_for(lambda: child.poll() is not None)
    assert child.poll() == 7
    assert (tmp_path / "out.log").read_text() == "out\nerr\n"


def test_the_worker_keeps_its_directory_and_a_program_that_cannot_start_says_why(
    started: list[Child], tmp_path: Path
) -> None:
    here = os.getcwd()
    child = run(started, ["/bin/sleep", "60"], tmp_path)
    wait_for(lambda: Path(f"/proc/{child.pid}/cwd").resolve() == tmp_path.resolve())
    assert os.getcwd() == here
    # Refused at once (no program run to fail later), the directory named when it is
    # the directory that is missing; the worker's own is kept either way.
    with pytest.raises(FileNotFoundError):
        run(started, [str(tmp_path / "no-such-program")], tmp_path)
    with (
        (tmp_path / "out.log").open("ab") as log,
        pytest.raises(FileNotFoundError, match="its directory"),
    ):
        spawn(["/bin/sleep", "60"], {}, tmp_path / "gone", log.fileno())
    assert os.getcwd() == here
