"""Managed services in the gunicorn arbiter: started with `flaskhub run`, restarted when
they die (backing off while they keep dying), stopped at exit.

Each runs in its own session, its output appended to <data_dir>/logs/service-<name>.log,
its pid in <data_dir>/services/<name>.pid (for the API's service model). Imported by
the arbiter: standard library only (and proxy.forks, proxy.lifeline).
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import subprocess
import threading
import time
from pathlib import Path

from app.services.specs import ServiceSpec, pid_file
from proxy.forks import fork_safe
from proxy.lifeline import die_with_parent

log = logging.getLogger(__name__)

# A service that keeps dying is restarted after 1, 2, 4 ... up to this many seconds;
# one that stayed up this long counts as healthy again.
MAX_RESTART_DELAY = 30.0
STOP_GRACE_SECONDS = 5.0


class ServiceProcess:
    """One managed service's process and the thread that keeps it running."""

    def __init__(self, spec: ServiceSpec, env: dict[str, str], data_dir: str) -> None:
        self.spec = spec
        self.env = env
        self.log_file = Path(data_dir) / "logs" / f"service-{spec.name}.log"
        self.pid_file = pid_file(data_dir, spec.name)
        self.proc: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._thread = threading.Thread(
            target=self._supervise, name=f"service-{spec.name}", daemon=True
        )

    def start(self) -> None:
        """Start the process and keep it running (in a thread: children die with it)."""
        self._thread.start()

    def _supervise(self) -> None:
        delay = 1.0
        while not self._stopping.is_set():
            began = time.monotonic()
            proc = self._launch()
            code = proc.wait() if proc is not None and not self._stopping.is_set() else None
            if self._stopping.is_set():
                if proc is not None:
                    _terminate(proc)  # started while stop() was already under way
                return
            delay = 1.0 if time.monotonic() - began >= MAX_RESTART_DELAY else delay
            log.warning(
                "Service %s exited (%s); restarting in %g s (its output: %s)",
                self.spec.name,
                "could not start" if code is None else f"status {code}",
                delay,
                self.log_file,
            )
            self._stopping.wait(delay)
            delay = min(delay * 2, MAX_RESTART_DELAY)

    def _launch(self) -> subprocess.Popen[bytes] | None:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        try:
            # Not while gunicorn forks a worker: the worker would keep the pipe through which
            # Popen learns that the service started, and Popen would wait for that worker.
            with fork_safe(), open(self.log_file, "ab") as output:
                self.proc = subprocess.Popen(
                    list(self.spec.command),
                    env=self.env,
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    preexec_fn=die_with_parent,
                )
        except OSError as e:
            command = shlex.join(self.spec.command)
            log.error("Cannot run service %s (%s): %s", self.spec.name, command, e)
            return None
        # Whole or not at all: the API reads it at any moment.
        partial = self.pid_file.with_suffix(".pid.tmp")
        partial.write_text(str(self.proc.pid))
        partial.replace(self.pid_file)
        log.info("Service %s started (pid %s)", self.spec.name, self.proc.pid)
        return self.proc

    def stop(self) -> None:
        """Stop restarting it, then SIGTERM its process group (SIGKILL after a grace)."""
        self._stopping.set()
        if self.proc is not None:
            _terminate(self.proc)
        self._thread.join(timeout=STOP_GRACE_SECONDS)
        self.pid_file.unlink(missing_ok=True)


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    _signal_group(proc.pid, signal.SIGTERM)
    try:
        proc.wait(STOP_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        _signal_group(proc.pid, signal.SIGKILL)
        proc.wait()


def _signal_group(pid: int, signum: int) -> None:
    try:
        os.killpg(pid, signum)
    except ProcessLookupError:
        pass
