"""Local spawners: one process per server on 127.0.0.1, in its own session.

`LocalProcessSpawner` (`spawner = "local"`) runs each server as its user's own
system account when the hub runs as root, else as the hub's account.
`SimpleLocalProcessSpawner` (`spawner = "simple"`) always shares the hub's
account, as JupyterHub's SimpleLocalProcessSpawner: for one person, tests and
benchmarks.
"""

from __future__ import annotations

import fcntl
import itertools
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from subprocess import Popen
from typing import Any

import gevent

from app.spawners import accounts, cpu, launch
from app.spawners.accounts import Account
from app.spawners.base import Spawner, SpawnerError
from app.spawners.launch import Child

log = logging.getLogger(__name__)

# Only these of the hub's own variables reach a user's server: never the hub's
# secrets (cookie secret, proxy token) or its settings.
PASSED_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "PYTHONPATH", "VIRTUAL_ENV", "TMPDIR")
STOP_GRACE_SECONDS = 5.0


# A server binds its port only once it has started (a second or more when many start
# at once); meanwhile the system may offer the same free port to the next spawn, in
# this worker or another, whose server would then fail. So each port handed out is
# marked by a file, <data_dir>/ports/<port>, for HANDED_OUT_SECONDS: the hub's workers
# (and replicas on this host with the same data_dir) see each other's marks. Marks are
# read and written under an flock of ports/.lock; old ones are swept now and then.
HANDED_OUT_SECONDS = 60.0
SWEEP_EVERY = 64
_handed_out_here = itertools.count()


def free_port(data_dir: str, ip: str = "127.0.0.1") -> int:
    """A port nobody listens on right now, and not handed out by a worker of this hub
    within HANDED_OUT_SECONDS."""
    marks = Path(data_dir) / "ports"
    marks.mkdir(mode=0o700, exist_ok=True)
    with open(marks / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # held for microseconds: no greenlet switch inside
        now = time.time()
        if next(_handed_out_here) % SWEEP_EVERY == 0:
            _sweep(marks, now)
        while True:
            with socket.socket() as sock:
                sock.bind((ip, 0))
                port = int(sock.getsockname()[1])
            mark = marks / str(port)
            try:
                if now - mark.stat().st_mtime <= HANDED_OUT_SECONDS:
                    continue  # handed out lately, perhaps by another worker
            except FileNotFoundError:
                pass
            mark.touch()
            return port


def _sweep(marks: Path, now: float) -> None:
    """Remove the marks of ports handed out long ago."""
    with os.scandir(marks) as entries:
        for entry in entries:
            if entry.name.isdigit() and now - entry.stat().st_mtime > HANDED_OUT_SECONDS:
                Path(entry.path).unlink(missing_ok=True)


def process_start_time(pid: int) -> int | None:
    """The start time of a live, non-zombie process (clock ticks since boot), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces; fields after it are fixed.
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


class LocalProcessSpawner(Spawner):
    """Runs `spawner_cmd` as a child process in the user's home.

    As root: as the user's system account (`system_user_template`), in its home.
    Otherwise: as the hub's account, in `data_dir/home/<storage id>`.
    """

    ip = "127.0.0.1"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pid: int | None = None
        self.port: int | None = None
        self.started_at: int | None = None
        self.proc: Child | Popen[bytes] | None = None
        self._account: Account | None = None

    @classmethod
    def shares_hub_account(cls) -> bool:
        return os.geteuid() != 0

    @property
    def account(self) -> Account | None:
        """The system account servers run as; None when they share the hub's."""
        if self.shares_hub_account():
            return None
        if self._account is None:
            self._account = accounts.find(
                self.settings.system_user_template,
                self.user_name,
                self.storage_id,
                create_missing=self.settings.create_system_users,
                allowed=self.settings.system_users_allowed,
            )
        return self._account

    @property
    def home(self) -> Path:
        """The user's directory: their account's home, else keyed by their stable id."""
        account = self.account
        if account is not None:
            return account.home
        return Path(self.settings.data_dir) / "home" / self.storage_id

    def delete_forever(self) -> None:
        if self.settings.keep_user_files:
            log.info("Keeping the files of deleted user %s", self.user_name)
        elif self.shares_hub_account():
            home = Path(self.settings.data_dir) / "home" / self.storage_id
            shutil.rmtree(home, ignore_errors=True)
            log.info("Removed the files of deleted user %s (%s)", self.user_name, home)
        else:
            try:
                name = accounts.remove(self.storage_id)
            except SpawnerError as e:
                # The user is gone either way; the account stays for the operator.
                log.warning(
                    "Could not remove the account of deleted user %s: %s", self.user_name, e
                )
                return
            if name is not None:
                log.info("Removed system account %s of deleted user %s", name, self.user_name)

    def command(self) -> list[str]:
        """spawner_cmd with its program resolved (also next to this Python)."""
        cmd = list(self.settings.spawner_cmd)
        search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
        program = shutil.which(cmd[0], path=search)
        if program is None:
            raise SpawnerError(f"Cannot start a server: command {cmd[0]!r} not found")
        return [program, *cmd[1:]]

    def environment(self, url: str) -> dict[str, str]:
        """The server's environment: a short allow-list of the hub's, then its own."""
        env = {k: os.environ[k] for k in PASSED_ENV if k in os.environ}
        # Each user's HOME is their own directory: tools keep their state apart.
        env["HOME"] = str(self.home)
        if (account := self.account) is not None:
            env.update(USER=account.name, LOGNAME=account.name, SHELL=account.shell)
        env.update(self.env)
        env["JUPYTERHUB_SERVICE_URL"] = url + self.service_prefix
        env["JUPYTERHUB_SERVICE_PORT"] = str(self.port)
        return env

    def prepare_home(self) -> None:
        """Create the home if needed; an account's must belong to it."""
        if (account := self.account) is not None:
            accounts.prepare_home(account)
        else:
            self.home.mkdir(parents=True, exist_ok=True)

    def start(self) -> str:
        self.report_progress(10, self.account_step())
        log_dir = Path(self.settings.data_dir) / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port(self.settings.data_dir, self.ip)
        url = f"http://{self.ip}:{self.port}"
        env = self.environment(url)
        self.prepare_home()
        log_path = log_dir / f"{self.file_stem}.log"
        cmd = self.command()
        program = Path(cmd[0]).name
        self.report_progress(20, f"Environment checked: home folder ready, {program} found")
        with log_path.open("ab") as logf:
            self.proc = self.launch(cmd, env, logf)
        self.pid = self.proc.pid
        # Its start time first: reading it waits while the process loads its program
        # (env execs the server's), which it does at once at the hub's priority, but
        # only as its turn comes among all starting servers once placed after the hub:
        # 13 ms a spawn on average during a storm of 200 (the worker serving no one),
        # 0.1 ms so.
        self.started_at = process_start_time(self.pid)
        lower_priority(self.pid, self.settings.server_nice)
        cpu.place(self.pid, self.file_stem, self.settings.server_cgroup, self.settings.server_nice)
        log.info("Started server of %s: pid %s, port %s", self.user_name, self.pid, self.port)
        self.report_progress(50, f"Server process started (pid {self.pid}, port {self.port})")
        return url

    def account_step(self) -> str:
        """The first progress message: the account the server runs as (found or made)."""
        account = self.account
        if account is None:
            return "Server runs as the hub's own account"
        return f"Server runs as system account {account.name}"

    def launch(self, cmd: list[str], env: dict[str, str], logf: Any) -> Child | Popen[bytes]:
        """Start the process, as the account if there is one; say why it cannot start."""
        account = self.account
        try:
            if account is None:
                return launch.spawn(cmd, env, self.home, logf.fileno())
            return subprocess.Popen(
                cmd,
                env=env,
                cwd=self.home,
                stdin=subprocess.DEVNULL,
                stdout=logf,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                user=account.uid,
                group=account.gid,
                extra_groups=account.groups,
                umask=0o077,
            )
        except OSError as e:
            if isinstance(e, PermissionError) and account is not None:
                raise SpawnerError(
                    f"System account {account.name!r} may not execute {cmd[0]} (or the "
                    "interpreter it names): install the servers' environment where every "
                    "account can read and run it (README: Per-user accounts)."
                ) from e
            raise SpawnerError(f"Cannot start a server with {cmd[0]}: {e.strerror}") from e

    def poll(self) -> int | None:
        if self.proc is not None:
            return self.proc.poll()
        if self.pid is None:
            return 0
        # Not our child (the hub restarted): check the pid still is the same process.
        started = process_start_time(self.pid)
        if started is None or (self.started_at is not None and started != self.started_at):
            return 0
        return None

    def stop(self, now: bool = False) -> None:
        self._end(now)
        cpu.release(self.file_stem, self.settings.server_cgroup)

    def _end(self, now: bool) -> None:
        """SIGTERM, then SIGKILL after STOP_GRACE_SECONDS (at once if now)."""
        if self.pid is None or self.poll() is not None:
            return
        self._signal(signal.SIGTERM)
        deadline = 0.0 if now else STOP_GRACE_SECONDS
        waited = 0.0
        while waited < deadline and self.poll() is None:
            gevent.sleep(0.05)
            waited += 0.05
        if self.poll() is None:
            log.warning("Server of %s ignored SIGTERM; sending SIGKILL", self.user_name)
            self._signal(signal.SIGKILL)
            while waited < deadline + 5 and self.poll() is None:
                gevent.sleep(0.05)
                waited += 0.05

    def _signal(self, sig: int) -> None:
        assert self.pid is not None
        try:
            os.killpg(self.pid, sig)
        except ProcessLookupError:
            pass
        except PermissionError:
            os.kill(self.pid, sig)

    def get_state(self) -> dict[str, Any]:
        return {"pid": self.pid, "port": self.port, "started_at": self.started_at}

    def load_state(self, state: dict[str, Any]) -> None:
        self.pid = state.get("pid")
        self.port = state.get("port")
        self.started_at = state.get("started_at")

    def clear_state(self) -> None:
        """After the server ended (stopped, or found dead): its CPU group goes too."""
        self.pid = self.port = self.started_at = None
        self.proc = None
        cpu.release(self.file_stem, self.settings.server_cgroup)


class SimpleLocalProcessSpawner(LocalProcessSpawner):
    """Every server as the hub's own account, even as root: for one person and tests."""

    @classmethod
    def shares_hub_account(cls) -> bool:
        return True


def lower_priority(pid: int, nice: int) -> None:
    """Give a new server the CPU after the hub and CHP (server_nice): a class starting
    its servers at once must not stall the pages every user's requests go through.

    A server runs in a session of its own, and where the kernel groups each session's
    processes (sched_autogroup, on by default in Debian's kernels) the CPU is shared
    between groups first: a process's own nice then weighs only against its own group.
    So the server's group gets the nice value too, through /proc/<pid>/autogroup."""
    if nice <= 0:
        return
    try:
        os.setpriority(os.PRIO_PROCESS, pid, nice)
    except OSError as e:
        log.warning("Could not lower the priority of server process %s: %s", pid, e)
    try:
        with open(f"/proc/{pid}/autogroup", "w") as group:
            group.write(str(nice))
    except FileNotFoundError:
        pass  # a kernel without autogroups (or the process is gone): nice alone decides
    except OSError as e:
        log.warning("Could not lower the priority of server process %s's group: %s", pid, e)
