"""Fixtures that run the whole system: `flaskhub run` as a subprocess with real CHP.

`hub_factory(**settings)` starts a hub on free ports with a temporary data dir
and returns a `Hub` to drive over HTTP; every hub started is stopped (Ctrl-C,
as a person would) at the end of the test module. `hub` is one shared default
hub per module.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.helpers import NAVIGATION, free_ports, wait_for, xsrf_token
from tests.postgres_server import Postgres, throwaway_cluster

REPO = Path(__file__).resolve().parents[2]
FLASKHUB = str(Path(sys.executable).parent / "flaskhub")
ADMIN = "admin"


@dataclass
class Hub:
    """A running hub: its URLs, data dir, an admin token, and helpers to call it."""

    public_url: str
    hub_url: str
    proxy_api_url: str
    data_dir: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    log_path: Path
    admin_token: str = ""
    http: requests.Session = field(default_factory=requests.Session)

    def cli(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run `flaskhub ARGS` against this hub's settings."""
        return subprocess.run(
            [FLASKHUB, *args],
            env=self.env,
            cwd=self.data_dir.parent,
            input=input,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def token(self, name: str) -> str:
        result = self.cli("token", name)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip().splitlines()[-1]

    def api(
        self, method: str, path: str, token: str | None = None, **kwargs: Any
    ) -> requests.Response:
        """Call /hub/api<path> through the proxy, as the admin unless a token is given."""
        headers = kwargs.pop("headers", {})
        headers.setdefault("Authorization", f"token {token or self.admin_token}")
        kwargs.setdefault("timeout", 60)
        return self.http.request(
            method, f"{self.public_url}/hub/api{path}", headers=headers, **kwargs
        )

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 60)
        kwargs.setdefault("allow_redirects", False)
        return self.http.get(self.public_url + path, **kwargs)

    def progress_events(self, path: str, token: str | None = None) -> list[dict[str, Any]]:
        """The server-sent events of /hub/api<path> (a progress URL), read to the end."""
        response = self.api("GET", path, token=token, stream=True)
        assert response.status_code == 200, response.text
        assert response.headers["Content-Type"].startswith("text/event-stream")
        with response:
            return [
                json.loads(line[5:])
                for line in response.iter_lines(decode_unicode=True)
                if line.startswith("data:")
            ]

    def routes(self) -> dict[str, Any]:
        token = (self.data_dir / "proxy_auth_token").read_text().strip()
        response = requests.get(
            f"{self.proxy_api_url}/api/routes",
            headers={"Authorization": f"token {token}"},
            timeout=10,
        )
        response.raise_for_status()
        return response.json()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Rows of a read-only query on the hub's SQLite database (the default db_url)."""
        url = f"file:{self.data_dir / 'flaskhub.sqlite'}?mode=ro"
        with contextlib.closing(sqlite3.connect(url, uri=True, timeout=10)) as db:
            return db.execute(sql, params).fetchall()

    def restart(self, **changes: Any) -> None:
        """Stop this hub (Ctrl-C) and start it again on the same data dir and ports."""
        self.stop()
        for key, value in changes.items():
            self.env[f"FLASKHUB_{key.upper()}"] = (
                value if isinstance(value, str) else json.dumps(value)
            )
        fresh = start_hub(self.data_dir, self.env)
        self.process, self.admin_token = fresh.process, fresh.admin_token

    def stop(self, sig: int = signal.SIGINT, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def hub_env(data_dir: Path, **settings: Any) -> dict[str, str]:
    """The environment of a hub process: FLASKHUB_* from settings, free ports."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLASKHUB_", "CONFIGPROXY"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    port, hub_port, proxy_api_port = free_ports(3)
    values: dict[str, Any] = {
        "data_dir": str(data_dir),
        "port": port,
        "hub_port": hub_port,
        "proxy_api_port": proxy_api_port,
        "admin_users": [ADMIN],
        # The tests' admin acts for any user, servers included (JupyterHub's default: off).
        "admin_access": True,
        "poll_interval": 2,
        # The hub's own account for every server (tests/integration/test_accounts.py
        # runs servers as system accounts).
        "spawner": "simple",
    }
    values.update(settings)
    for key, value in values.items():
        env[f"FLASKHUB_{key.upper()}"] = value if isinstance(value, str) else json.dumps(value)
    return env


def start_hub(
    data_dir: Path, env: dict[str, str], timeout: float = 60, *, own_group: bool = False
) -> Hub:
    """Start `flaskhub run` and wait until it says it is running; `own_group` starts it
    in a process group of its own, as a terminal does, for a Ctrl-C to the whole group."""
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir.parent / f"{data_dir.name}-run.log"
    offset = len(log_path.read_text(errors="replace")) if log_path.exists() else 0
    with log_path.open("ab") as logf:
        process = subprocess.Popen(
            [FLASKHUB, "run"],
            env=env,
            cwd=data_dir.parent,
            stdout=logf,
            stderr=subprocess.STDOUT,
            process_group=0 if own_group else None,
        )
    hub = Hub(
        public_url=f"http://127.0.0.1:{env['FLASKHUB_PORT']}",
        hub_url=f"http://127.0.0.1:{env['FLASKHUB_HUB_PORT']}",
        proxy_api_url=f"http://127.0.0.1:{env['FLASKHUB_PROXY_API_PORT']}",
        data_dir=data_dir,
        env=env,
        process=process,
        log_path=log_path,
    )

    def running() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"flaskhub run exited at start:\n{hub.log()[-3000:]}")
        # The log is appended across restarts: look only at what this start wrote.
        return "FlaskHub is running" in hub.log()[offset:]

    try:
        wait_for(running, timeout)
    except AssertionError:
        hub.stop()
        raise RuntimeError(f"flaskhub run did not start:\n{hub.log()[-3000:]}") from None
    hub.admin_token = hub.token(ADMIN)
    return hub


@pytest.fixture(scope="module")
def hub_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Hub]]:
    """Start hubs with given settings; all are stopped after the module."""
    hubs: list[Hub] = []

    def factory(**settings: Any) -> Hub:
        data_dir = tmp_path_factory.mktemp("hub") / "data"
        hub = start_hub(data_dir, hub_env(data_dir, **settings))
        hubs.append(hub)
        return hub

    yield factory
    for hub in hubs:
        hub.stop()


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    """A throwaway PostgreSQL cluster for the module (request it before `hub_factory`,
    so the hubs stop before it does)."""
    with throwaway_cluster() as pg:
        yield pg


@pytest.fixture(scope="module")
def hub(hub_factory: Callable[..., Hub]) -> Hub:
    """One hub with default settings, shared by a test module."""
    return hub_factory()


def server_pids(user: str, hub: Hub | None = None) -> list[int]:
    """Pids of live processes started for a user (by their JUPYTERHUB_USER); with `hub`,
    only that hub's (by JUPYTERHUB_API_URL: other tests on the machine may use the name)."""
    found = []
    needles = [f"JUPYTERHUB_USER={user}".encode()]
    if hub is not None:
        needles.append(f"JUPYTERHUB_API_URL={hub.hub_url}/hub/api".encode())
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if all(n in environ for n in needles) and pid_alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def process_tree(pid: int) -> list[int]:
    """pid and its descendants, from /proc (children first)."""
    children = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            children += [int(c) for c in (task / "children").read_text().split()]
    return [p for child in children for p in process_tree(child)] + [pid]


def login(hub: Hub, name: str) -> requests.Session:
    """A browser-like session logged in to the hub as name (through the login form)."""
    session = requests.Session()
    session.headers.update(NAVIGATION)
    page = session.get(f"{hub.public_url}/hub/login", timeout=10)
    response = session.post(
        f"{hub.public_url}/hub/login",
        data={"username": name, "_xsrf": xsrf_token(page.text)},
        allow_redirects=False,
        timeout=30,
    )
    assert response.status_code == 302, response.text
    return session


def pid_alive(pid: int) -> bool:
    """True if the process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def over_the_socket(
    hub: Hub, method: str, path: str, headers: dict[str, str], body: str | None = None
) -> tuple[int, str, str]:
    """A request over the hub's Unix socket, as the proxy sends one: (status, Set-Cookie,
    body)."""

    class UnixConnection(http.client.HTTPConnection):
        def connect(self) -> None:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.connect(str(hub.data_dir / "hub.sock"))

    with contextlib.closing(UnixConnection("localhost", timeout=10)) as conn:
        conn.request(method, path, body=body, headers={"Host": "hub.example", **headers})
        response = conn.getresponse()
        text = response.read().decode()
        return response.status, response.getheader("Set-Cookie", ""), text
