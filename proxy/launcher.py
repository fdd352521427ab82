"""Start, stop and supervise configurable-http-proxy (CHP) as a child process."""

from __future__ import annotations

import collections
import json
import logging
import os
import re
import shlex
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import IO

from proxy.forks import fork_safe
from proxy.hosts import url_host
from proxy.lifeline import die_with_parent

logger = logging.getLogger(__name__)

CHP_SCRIPT = Path("node_modules", "configurable-http-proxy", "bin", "configurable-http-proxy")
# CHP's command line, with keep-alive connections to the hub's Unix socket (see the file).
CHP_WRAPPER = "chp.mjs"
INSTALL_HINT = "If it is missing or broken, run `npm ci --prefix proxy` (needs Node >= 20)."
# A CHP that keeps dying is restarted after 0, interval, 2*interval, ... up to this many
# seconds; one that stayed up this long counts as healthy again.
MAX_RESTART_DELAY = 10.0
TAIL_LINES = 20
TAIL_BYTES = 64 * 1024
POLL_INTERVAL = 0.1
HEALTH_TIMEOUT = 0.5
_ANSI_RE = re.compile(r"\x1b\[[0-9;]*m")
# CHP catches its own listen errors ("listen EADDRINUSE: address already in use
# 127.0.0.1:8000") as uncaught exceptions and keeps running without that port.
_LISTEN_ERROR_RE = re.compile(r"listen (E[A-Z]+): ([^\n]*)")


class ProxyStartError(RuntimeError):
    """CHP did not start; the message has the tail of its output and what to do."""


def find_chp() -> list[str]:
    """Return the command that runs CHP: our pinned copy (through chp.mjs), else one on
    PATH (which opens a connection per request to a Unix-socket target)."""
    here = Path(__file__).resolve().parent
    script = here / CHP_SCRIPT
    if script.is_file():
        return ["node", str(here / CHP_WRAPPER)]
    found = shutil.which("configurable-http-proxy")
    if found:
        return [found]
    raise ProxyStartError(
        f"configurable-http-proxy is not installed: {script} does not exist and there is "
        "none on PATH. Run `npm ci --prefix proxy` in the FlaskHub checkout (needs Node >= 20)."
    )


class _OutputTail:
    """CHP's output for one run: appended to a log file, or piped and copied to our stderr.

    Either way the last lines stay readable for error messages.
    """

    def __init__(self, log_file: str | None) -> None:
        self.log_file = log_file
        self._file: IO[bytes] | None = None
        self._offset = 0
        self._lines: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self._pump: threading.Thread | None = None

    def stream(self) -> IO[bytes] | int:
        """Return what to pass as the child's stdout."""
        if self.log_file is None:
            return subprocess.PIPE
        self._file = open(self.log_file, "ab")  # handed to the child; closed in attach()
        # Only this run's output counts: the file may hold earlier runs.
        self._offset = self._file.tell()
        return self._file

    def attach(self, proc: subprocess.Popen[bytes]) -> None:
        """Start collecting the output of proc."""
        if self._file is not None:
            self._file.close()  # the child has its own descriptor
        elif proc.stdout is not None:
            self._pump = threading.Thread(
                target=self._copy, args=(proc.stdout,), name=f"chp-output-{proc.pid}", daemon=True
            )
            self._pump.start()

    def close(self) -> None:
        """Release the file or wait for the pipe to drain (the process must be gone)."""
        if self._file is not None:
            self._file.close()
        if self._pump is not None:
            self._pump.join(timeout=1.0)

    def text(self) -> str:
        """Return the last lines of output, without colour codes."""
        if self.log_file is None:
            lines = list(self._lines)
        else:
            lines = self._read_file_tail()
        return "\n".join(_ANSI_RE.sub("", line) for line in lines)

    def _read_file_tail(self) -> list[str]:
        """Return the last lines this run appended to the log file."""
        try:
            with open(self.log_file or "", "rb") as f:
                size = f.seek(0, os.SEEK_END)
                f.seek(max(self._offset, size - TAIL_BYTES))
                data = f.read()
        except OSError as e:
            return [f"(could not read {self.log_file}: {e})"]
        return data.decode(errors="replace").splitlines()[-TAIL_LINES:]

    def _copy(self, stream: IO[bytes]) -> None:
        """Copy CHP's output to our stderr, keeping the last lines."""
        with stream:
            for raw in stream:
                self._lines.append(raw.decode(errors="replace").rstrip("\n"))
                try:
                    # fd 2 rather than sys.stderr: the same place an inherited stderr goes.
                    os.write(2, raw)
                except OSError:
                    pass


class ProxyProcess:
    """configurable-http-proxy as a child process of a plain (not gevent) supervisor.

    start() returns once CHP's API answers and its public port is CHP's, or raises
    ProxyStartError (CHP exited, could not listen, or did not answer in time) after
    killing it. supervise() restarts CHP whenever it dies; a restarted CHP has an
    empty route table, which the hub restores. stop() ends both. The token reaches
    CHP only through CONFIGPROXY_AUTH_TOKEN, never argv.
    """

    def __init__(
        self,
        *,
        ip: str,
        port: int,
        api_ip: str,
        api_port: int,
        default_target: str,
        error_target: str | None,
        auth_token: str,
        log_level: str = "info",
        cmd: list[str] | None = None,
        log_file: str | None = None,
        host_routing: bool = False,
    ) -> None:
        self.ip = ip
        #: Route by host as well as path (per-user origins: the host is the path's first step).
        self.host_routing = host_routing
        self.port = port
        self.api_ip = api_ip
        self.api_port = api_port
        self.default_target = default_target
        self.error_target = error_target
        self.log_level = log_level
        self.log_file = log_file
        self.api_url = f"http://{url_host(api_ip)}:{api_port}"
        self._cmd = cmd
        self._auth_token = auth_token
        self._proc: subprocess.Popen[bytes] | None = None
        self._output: _OutputTail | None = None
        self._started_at = 0.0
        self._start_timeout = 15.0
        # Held while a process is launched or replaced: the owner and the supervisor
        # thread both start CHP, and only one may at a time.
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._supervisor: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        """Return the pid of the running CHP, or None."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def start(self, timeout: float = 15.0) -> None:
        """Start CHP and wait until it serves; raise ProxyStartError if it does not."""
        with self._lock:
            if self.pid is not None:
                raise ProxyStartError(
                    f"configurable-http-proxy is already running (pid {self.pid})"
                )
            self._stopping.clear()
            self._start_timeout = timeout
            self._launch(timeout)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the supervisor, then CHP: SIGTERM, SIGKILL after timeout. Idempotent."""
        self._stopping.set()
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is not None and supervisor is not threading.current_thread():
            # A restart in progress notices _stopping within a poll and kills its CHP.
            supervisor.join(timeout=timeout + self._start_timeout)
        with self._lock:
            proc, self._proc = self._proc, None
            output, self._output = self._output, None
            if proc is not None:
                _terminate(proc, timeout)
            if output is not None:
                output.close()

    def supervise(self, interval: float = 1.0) -> None:
        """Restart CHP in a daemon thread whenever it is not running, until stop()."""
        if self._supervisor is not None and self._supervisor.is_alive():
            return
        self._stopping.clear()
        self._supervisor = threading.Thread(
            target=self._supervise, args=(interval,), name="chp-supervisor", daemon=True
        )
        self._supervisor.start()

    def _supervise(self, interval: float) -> None:
        """Poll CHP every interval; restart it, backing off while it keeps dying."""
        failures = 0
        while not self._stopping.wait(interval):
            proc = self._proc
            if proc is not None:
                code = proc.poll()
                if code is None:
                    if time.monotonic() - self._started_at >= MAX_RESTART_DELAY:
                        failures = 0
                    continue
                if self._output is not None:
                    self._output.close()  # let the pipe drain: its last lines say why
                logger.warning(
                    "configurable-http-proxy (pid %s) exited with code %s; restarting it. "
                    "Its routes are lost until the hub restores them. Last output:\n%s",
                    proc.pid,
                    code,
                    self._output.text() if self._output else "",
                )
            # proc is None: the previous restart failed, and said why.
            delay = min(MAX_RESTART_DELAY, interval * 2 ** (failures - 1)) if failures else 0.0
            failures += 1
            if self._stopping.wait(delay):
                return
            with self._lock:
                if self._stopping.is_set():
                    return
                try:
                    self._launch(self._start_timeout)
                except ProxyStartError as e:
                    logger.error("Could not restart configurable-http-proxy: %s", e)
                except Exception:
                    # The supervisor must outlive any one failed restart; try again later.
                    logger.exception("Unexpected error while restarting configurable-http-proxy")

    def _launch(self, timeout: float) -> None:
        """Run CHP and wait until it serves; the caller holds _lock."""
        cmd = [*(self._cmd or find_chp()), *self._args()]
        env = {**os.environ, "CONFIGPROXY_AUTH_TOKEN": self._auth_token}
        if self._output is not None:
            self._output.close()
        output = _OutputTail(self.log_file)
        logger.info("Starting configurable-http-proxy: %s", shlex.join(cmd))
        try:
            # A restart runs in the supervisor's thread: a worker forked meanwhile would keep
            # Popen's pipes open (and Popen waiting) for as long as it lives.
            with fork_safe():
                proc = subprocess.Popen(
                    cmd,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=output.stream(),
                    stderr=subprocess.STDOUT,
                    # Ctrl-C in a terminal must not reach CHP directly: stop() ends it.
                    start_new_session=True,
                    # A killed `flaskhub run` must not leave CHP holding its ports.
                    preexec_fn=die_with_parent,
                )
        except OSError as e:
            output.close()
            self._proc, self._output = None, None
            raise ProxyStartError(f"Could not run {shlex.join(cmd)}: {e}. {INSTALL_HINT}") from e
        output.attach(proc)
        self._proc, self._output = proc, output
        try:
            self._wait_until_serving(proc, output, timeout)
        except ProxyStartError:
            _terminate(proc, timeout=2.0)
            output.close()
            self._proc = None
            raise
        self._started_at = time.monotonic()
        logger.info(
            "configurable-http-proxy (pid %s) serves %s:%s, API at %s",
            proc.pid,
            self.ip,
            self.port,
            self.api_url,
        )

    def _args(self) -> list[str]:
        """Return CHP's command-line arguments (never the token)."""
        args = ["--ip", self.ip, "--port", str(self.port)]
        args += ["--api-ip", self.api_ip, "--api-port", str(self.api_port)]
        args += ["--default-target", self.default_target]
        if self.error_target:
            args += ["--error-target", self.error_target]
        if self.host_routing:
            args.append("--host-routing")
        return [*args, "--log-level", self.log_level]

    def _wait_until_serving(
        self, proc: subprocess.Popen[bytes], output: _OutputTail, timeout: float
    ) -> None:
        """Return once proc's API and public port answer; raise ProxyStartError otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            problem = _start_problem(proc, output)
            if problem is None and self._api_answers() and self._public_port_serves():
                # A listen error can be logged just after the API came up.
                problem = _start_problem(proc, output)
                if problem is None:
                    return
            if problem is None and self._stopping.is_set():
                problem = "stop() was called while it was starting."
            if problem is None and time.monotonic() > deadline:
                problem = (
                    f"its API at {self.api_url} (or its public port {self.ip}:{self.port}) "
                    f"did not answer within {timeout:g} s."
                )
            if problem is not None:
                if proc.poll() is not None:
                    output.close()  # let the pipe drain: its last lines say why
                tail = output.text() or "(no output)"
                where = f" (in {self.log_file})" if self.log_file else ""
                raise ProxyStartError(
                    f"configurable-http-proxy did not start: {problem}\n"
                    f"Its last output{where}:\n{tail}"
                )
            time.sleep(POLL_INTERVAL)

    def _api_answers(self) -> bool:
        """Return True if CHP's API accepts our token."""
        auth = {"Authorization": f"token {self._auth_token}"}
        return http_get(self.api_ip, self.api_port, "/api/routes", auth)[0] == 200

    def _public_port_serves(self) -> bool:
        """Return True if CHP's health check answers on the public port."""
        status, body = http_get(self.ip, self.port, "/_chp_healthz")
        try:
            return status == 200 and json.loads(body).get("status") == "OK"
        except ValueError:
            return False


def http_get(
    ip: str, port: int, path: str, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    """Status and body of a plain-HTTP GET; (0, b"") when nothing answers.

    No HTTP library: this runs in gunicorn's arbiter, whose workers fork from it
    and monkey-patch afterwards, which must find neither ssl nor sockets in use.
    Its threads call it while workers fork: fork_safe() keeps the locks it takes
    (the idna codec's first import, the resolver's) out of the workers.
    """
    host = url_host(ip).strip("[]")
    lines = [f"GET {path} HTTP/1.0", f"Host: {url_host(ip)}:{port}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    try:
        with fork_safe(), socket.create_connection((host, port), timeout=HEALTH_TIMEOUT) as sock:
            sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
            response = b"".join(iter(lambda: sock.recv(65536), b""))
        head, _, body = response.partition(b"\r\n\r\n")
        return int(head.split(b" ", 2)[1]), body
    except (OSError, IndexError, ValueError):
        return 0, b""


def _start_problem(proc: subprocess.Popen[bytes], output: _OutputTail) -> str | None:
    """Return why proc failed to start, or None while it may still come up."""
    code = proc.poll()
    if code is not None:
        return f"it exited with code {code}. {INSTALL_HINT}"
    match = _LISTEN_ERROR_RE.search(output.text())
    if match is None:
        return None
    if match.group(1) == "EADDRINUSE":
        return (
            f"{match.group(2)}. Another process (perhaps an earlier proxy) holds that port: "
            "stop it or configure another port."
        )
    return f"it could not listen: {match.group(1)} {match.group(2)}."


def _terminate(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """End proc with SIGTERM, then SIGKILL after timeout, and reap it."""
    if proc.poll() is not None:
        return
    logger.info("Stopping configurable-http-proxy (pid %s)", proc.pid)
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        logger.warning(
            "configurable-http-proxy (pid %s) ignored SIGTERM for %s s; killing it",
            proc.pid,
            timeout,
        )
        proc.kill()
        proc.wait()
