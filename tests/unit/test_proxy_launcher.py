"""ProxyProcess and find_chp with a real configurable-http-proxy on free loopback ports."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from proxy.client import ProxyClient
from proxy.launcher import CHP_SCRIPT, ProxyProcess, ProxyStartError, _terminate, find_chp
from tests.helpers import free_ports, wait_for

pytestmark = pytest.mark.process

TOKEN = "launcher-test-token"


@pytest.fixture
def make_proxy(tmp_path: Path) -> Iterator[Callable[..., ProxyProcess]]:
    """Build ProxyProcess objects on free ports (logging to tmp_path); stop them all after."""
    made: list[ProxyProcess] = []

    def make(**overrides: object) -> ProxyProcess:
        port, api_port = free_ports(2)
        options: dict = {
            "ip": "127.0.0.1",
            "port": port,
            "api_ip": "127.0.0.1",
            "api_port": api_port,
            "default_target": "http://127.0.0.1:1",
            "error_target": None,
            "auth_token": TOKEN,
            "log_file": str(tmp_path / "chp.log"),
        }
        options.update(overrides)
        process = ProxyProcess(**options)
        made.append(process)
        return process

    yield make
    for process in made:
        process.stop()


@pytest.fixture
def listening_socket() -> Iterator[socket.socket]:
    """A socket that listens on a free loopback port and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock


def process_exists(pid: int) -> bool:
    """Return True if a process (or unreaped zombie) with pid exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def client_for(process: ProxyProcess) -> ProxyClient:
    """Return a fast-failing API client for process."""
    return ProxyClient(process.api_url, TOKEN, timeout=2.0, retries=0)


def test_find_chp_prefers_the_pinned_copy() -> None:
    cmd = find_chp()

    assert cmd[0] == "node"
    assert Path(cmd[1]).is_file()
    # The pinned CHP's command line, through the wrapper that keeps connections to the
    # hub's socket open.
    assert Path(cmd[1]).parts[-2:] == ("proxy", "chp.mjs")
    assert (Path(cmd[1]).parent / CHP_SCRIPT).is_file()
    version = subprocess.run([*cmd, "--version"], capture_output=True, text=True, timeout=30)
    assert version.stdout.strip() == "5.3.0"


def test_start_serves_and_stop_leaves_no_process(make_proxy) -> None:
    process = make_proxy()

    process.start()
    pid = process.pid
    client = client_for(process)
    try:
        assert pid is not None
        assert client.ping()
        assert client.get_all_routes()["/"]["target"] == "http://127.0.0.1:1"
    finally:
        client.close()

    process.stop()

    assert process.pid is None
    assert not process_exists(pid)
    assert not client.ping()
    process.stop()  # idempotent


def test_token_only_in_the_environment(make_proxy) -> None:
    process = make_proxy()
    process.start()

    pid = process.pid
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    assert TOKEN.encode() not in cmdline
    assert b"--api-port" in cmdline
    assert f"CONFIGPROXY_AUTH_TOKEN={TOKEN}".encode() in environ


def test_runs_in_its_own_session(make_proxy) -> None:
    process = make_proxy()
    process.start()

    assert os.getsid(process.pid) == process.pid != os.getsid(0)


def test_start_twice_is_refused(make_proxy) -> None:
    process = make_proxy()
    process.start()

    with pytest.raises(ProxyStartError, match="already running"):
        process.start()


@pytest.mark.parametrize("taken", ["port", "api_port"])
@pytest.mark.parametrize("to_log_file", [True, False], ids=["log_file", "stderr"])
def test_start_fails_when_a_port_is_taken(
    make_proxy, listening_socket: socket.socket, tmp_path: Path, taken: str, to_log_file: bool
) -> None:
    # CHP does not exit when it cannot listen: it logs the error and keeps running.
    port = listening_socket.getsockname()[1]
    log_file = str(tmp_path / "taken.log") if to_log_file else None
    process = make_proxy(**{taken: port}, log_file=log_file)

    started = time.monotonic()
    with pytest.raises(ProxyStartError) as excinfo:
        process.start(timeout=10.0)

    message = str(excinfo.value)
    assert time.monotonic() - started < 5.0
    assert f"address already in use 127.0.0.1:{port}" in message
    assert "configure another port" in message
    assert "EADDRINUSE" in message  # the tail of CHP's output
    assert process.pid is None


@pytest.mark.parametrize("to_log_file", [True, False], ids=["log_file", "stderr"])
def test_start_fails_when_chp_exits(make_proxy, tmp_path: Path, to_log_file: bool) -> None:
    fake = [sys.executable, "-c", "import sys; print('cannot start: bad option'); sys.exit(3)"]
    log_file = str(tmp_path / "exits.log") if to_log_file else None
    process = make_proxy(cmd=fake, log_file=log_file)

    with pytest.raises(ProxyStartError) as excinfo:
        process.start(timeout=10.0)

    message = str(excinfo.value)
    assert "exited with code 3" in message
    assert "cannot start: bad option" in message
    assert "npm ci --prefix proxy" in message


def test_start_fails_when_chp_never_answers(make_proxy) -> None:
    hang = [sys.executable, "-c", "import time; time.sleep(60)"]
    process = make_proxy(cmd=hang)

    with pytest.raises(ProxyStartError, match="did not answer within 0.5 s"):
        process.start(timeout=0.5)

    assert process.pid is None


def test_start_fails_when_the_command_is_missing(make_proxy, tmp_path: Path) -> None:
    process = make_proxy(cmd=[str(tmp_path / "no-such-chp")])

    with pytest.raises(ProxyStartError, match="npm ci --prefix proxy"):
        process.start()


def test_earlier_runs_in_the_log_file_do_not_count(make_proxy, tmp_path: Path) -> None:
    log_file = tmp_path / "old.log"
    log_file.write_text("error: listen EADDRINUSE: address already in use 127.0.0.1:1\n")
    process = make_proxy(log_file=str(log_file))

    process.start()

    assert process.pid is not None
    assert "Proxy API at" in log_file.read_text()


def test_supervise_restarts_a_killed_chp(make_proxy, caplog) -> None:
    process = make_proxy()
    process.start()
    client = client_for(process)
    client.add_route("/user/alice/", "http://127.0.0.1:1", {"user": "alice"})
    old_pid = process.pid
    assert old_pid is not None
    process.supervise(interval=0.05)

    with caplog.at_level(logging.WARNING, logger="proxy.launcher"):
        os.kill(old_pid, signal.SIGKILL)
        wait_for(lambda: process.pid not in (None, old_pid) and client.ping(), timeout=10)

    try:
        assert set(client.get_all_routes()) == {"/"}
    finally:
        client.close()
    assert any("exited with code -9" in r.getMessage() for r in caplog.records)

    new_pid = process.pid
    process.stop()
    assert not process_exists(new_pid)
    # stop() ended the supervisor: nothing is left that could start another CHP.
    assert not any(t.name == "chp-supervisor" for t in threading.enumerate())
    assert process.pid is None


def test_terminate_kills_what_ignores_sigterm() -> None:
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print(1, flush=True); time.sleep(60)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    proc.stdout.readline()  # SIGTERM is ignored from here on

    started = time.monotonic()
    _terminate(proc, timeout=0.3)

    assert proc.returncode == -signal.SIGKILL
    assert time.monotonic() - started < 5.0
    proc.stdout.close()


def test_chp_takes_its_api_token_from_the_file_configproxy_auth_token_file_names(
    tmp_path: Path,
) -> None:
    # As a Docker secret gives it (the stack file's proxy): one line in a file.
    secret = tmp_path / "proxy_auth_token"
    secret.write_text("token-from-a-file\n")
    port, api_port = free_ports(2)
    env = {k: v for k, v in os.environ.items() if k != "CONFIGPROXY_AUTH_TOKEN"}
    env["CONFIGPROXY_AUTH_TOKEN_FILE"] = str(secret)
    command = [*find_chp(), "--ip", "127.0.0.1", "--port", str(port)]
    command += ["--api-ip", "127.0.0.1", "--api-port", str(api_port)]
    chp = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{api_port}"
        right = ProxyClient(url, "token-from-a-file", timeout=2.0, retries=0)
        wait_for(right.ping, 30, 0.1)
        assert right.get_all_routes() == {}
        wrong = ProxyClient(url, "another-token", timeout=2.0, retries=0)
        assert not wrong.ping()
    finally:
        chp.terminate()
        chp.wait(timeout=10)
