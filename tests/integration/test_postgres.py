"""FlaskHub on a real PostgreSQL: migrations, the lifecycle, restarts, concurrency.

A throwaway cluster (tests/postgres_server.py, the `postgres` fixture) with
the hub's role reaching it over TCP with a password, as in docker-compose.yml.

The hub runs two gunicorn workers here, so the write lock, the spawn claim
and the reconcile lease are exercised across processes.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests
from sqlalchemy import create_engine, inspect, select, text, update
from sqlalchemy.engine import Engine, make_url

from app.models import Server, ServerState, User
from app.outcomes import Outcome
from app.spawners import Spawner
from tests.helpers import free_port, wait_for
from tests.integration.conftest import FLASKHUB, Hub, login, pid_alive, server_pids
from tests.postgres_server import Postgres
from tests.spawners import FAIL_STATUS, start_calls

pytestmark = pytest.mark.integration

CONCURRENT_USERS = 20
T = TypeVar("T")


@pytest.fixture(scope="module")
def pg_hub(postgres: Postgres, hub_factory: Callable[..., Hub]) -> Hub:
    """One hub on PostgreSQL with two workers (set up after, so stopped before, the cluster)."""
    return hub_factory(
        db_url=postgres.create_database(), workers=2, spawner="tests.spawners:FaultSpawner"
    )


def _api_status(hub: Hub, owner: str, token: str) -> requests.Response:
    return hub.get(f"/user/{owner}/api/status", headers={"Authorization": f"token {token}"})


def _all_at_once(calls: list[Callable[[], T]], timeout: float = 120) -> list[T | BaseException]:
    """Run the calls in threads released together; their results or exceptions, in order."""
    barrier = threading.Barrier(len(calls))
    results: list[T | BaseException | None] = [None] * len(calls)

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=10)
            results[i] = calls[i]()
        except BaseException as e:  # returned, so the test's assert shows it
            results[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), "calls still running"
    return results  # type: ignore[return-value]


def _server_request(hub: Hub, method: str, name: str, *, base: str | None = None) -> int:
    """Start or stop a user's server on a connection of its own (threads share none)."""
    response = requests.request(
        method,
        f"{base or hub.public_url}/hub/api/users/{name}/server",
        headers={"Authorization": f"token {hub.admin_token}", "Connection": "close"},
        timeout=90,
    )
    return response.status_code


def test_migrations_run_twice_and_match_the_models(postgres: Postgres) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from app.migrations import alembic_config, upgrade
    from app.models import Base

    url = postgres.create_database()
    upgrade(url)
    upgrade(url)  # idempotent: nothing to do the second time
    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).all() == [(head,)]
            tables = set(inspect(conn).get_table_names())
            assert set(Base.metadata.tables) <= tables
            # The migrations build exactly the models' schema on PostgreSQL too.
            assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    finally:
        engine.dispose()


def test_db_upgrade_command_is_idempotent_and_hides_the_password(
    postgres: Postgres, tmp_path: Path
) -> None:
    url = postgres.create_database()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLASKHUB_")}
    env |= {"FLASKHUB_DB_URL": url, "FLASKHUB_DATA_DIR": str(tmp_path / "data")}
    for _ in range(2):
        result = subprocess.run(
            [FLASKHUB, "db", "upgrade"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        assert "up to date" in result.stdout
        assert postgres.password not in result.stdout + result.stderr


def test_replicas_starting_together_migrate_the_database_once(
    postgres: Postgres, tmp_path: Path
) -> None:
    """Hub tasks of a stack start at once on a new database: each migrates before it
    serves, and none may fail on another's half-made schema."""
    url = postgres.create_database()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLASKHUB_")}
    env |= {"FLASKHUB_DB_URL": url, "FLASKHUB_DATA_DIR": str(tmp_path / "data")}
    runs = [
        subprocess.Popen(
            [FLASKHUB, "db", "upgrade"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(5)
    ]
    outputs = [run.communicate(timeout=120)[0] for run in runs]
    assert [run.returncode for run in runs] == [0] * 5, outputs


def _write_lock_waiters(engine: Engine) -> int:
    """How many sessions of engine's database wait for an advisory lock (the write lock)."""
    with engine.connect() as conn:
        return conn.execute(
            text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            )
        ).scalar_one()


def test_write_transactions_are_serialised_across_engines(postgres: Postgres) -> None:
    """Like BEGIN IMMEDIATE on SQLite: a second process's write waits for the first's."""
    from app.db import Database

    url = postgres.create_database()
    first, second, observer = Database(url), Database(url), create_engine(url)
    inside = threading.Event()
    order: list[str] = []

    def hold() -> None:
        with first.write() as session:
            session.execute(text("SELECT 1"))
            inside.set()
            wait_for(lambda: _write_lock_waiters(observer) == 1, timeout=10)
            order.append("first done")

    def wait_then_write() -> None:
        assert inside.wait(timeout=10)
        with second.write() as session:
            order.append("second in")
            session.execute(text("SELECT 1"))

    try:
        threads = [threading.Thread(target=hold), threading.Thread(target=wait_then_write)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert order == ["first done", "second in"]
        # Reads never wait for writers.
        with first.write() as session:
            session.execute(text("SELECT 1"))
            with second.read() as reader:
                assert reader.execute(text("SELECT 1")).scalar() == 1
    finally:
        first.dispose()
        second.dispose()
        observer.dispose()


def test_lease_is_taken_by_exactly_one_of_two_racing_workers(postgres: Postgres) -> None:
    """Two engines (as two worker processes) race for the first lease row, several times."""
    from flask import Flask

    from app import background
    from app.db import Database
    from app.migrations import upgrade

    url = postgres.create_database()
    upgrade(url)
    apps = []
    for holder in ("w1", "w2"):
        app = Flask(holder)
        app.extensions["flaskhub.db"] = Database(url)
        apps.append(app)
    try:
        for _round in range(5):
            with apps[0].extensions["flaskhub.db"].write() as session:
                session.execute(text("DELETE FROM leases"))
            results = _all_at_once(
                [partial(background.acquire_lease, app, app.name, ttl=30) for app in apps]
            )
            assert sorted(map(str, results)) == ["False", "True"], results
    finally:
        for app in apps:
            app.extensions["flaskhub.db"].dispose()


ALIVE_PIDS: set[int] = set()


class _PidSpawner(Spawner):
    """A spawner over pretend processes: a pid is alive while in ALIVE_PIDS."""

    pid: int | None = None

    def poll(self) -> int | None:
        return None if self.pid in ALIVE_PIDS else 0

    def stop(self, now: bool = False) -> None:
        ALIVE_PIDS.discard(self.pid)  # type: ignore[arg-type]

    def get_state(self) -> dict[str, Any]:
        return {"pid": self.pid}

    def load_state(self, state: dict[str, Any]) -> None:
        self.pid = state.get("pid")

    def clear_state(self) -> None:
        self.pid = None


def test_a_worker_uses_the_process_another_worker_started_since(
    postgres: Postgres, clean_env: Path
) -> None:
    """Worker A polled a server; worker B stopped it and started it again (a new
    process, the same row). A must poll and stop the new process, not its old handle."""
    from app import create_app
    from app.db import get_db
    from app.migrations import upgrade
    from app.servers import get_servers

    url = postgres.create_database()
    upgrade(url)
    apps = [
        create_app(
            {
                "db_url": url,
                "data_dir": str(clean_env / "data"),
                "proxy_api_port": free_port(),  # nothing listens: route changes fail, logged
                "spawner": f"{__name__}:_PidSpawner",
            }
        )
        for _worker in ("a", "b")
    ]
    a = get_servers(apps[0])
    b_db = get_db(apps[1])
    a.users.create_many(["nomad"])

    def started_by_b(pid: int) -> None:
        ALIVE_PIDS.add(pid)
        with b_db.write() as session:
            user = session.scalar(select(User).where(User.name == "nomad"))
            assert user is not None
            server = user.server("") or Server(user=user, name="")
            server.state, server.url = ServerState.RUNNING, "http://127.0.0.1:9"
            server.spawner_state = {"pid": pid}
            session.add(server)

    try:
        started_by_b(101)
        a.poll_all()  # A's reconcile loop now holds a handle on process 101
        ALIVE_PIDS.discard(101)  # B stops it ...
        with b_db.write() as session:
            session.execute(update(Server).values(state=ServerState.STOPPED, spawner_state={}))
        started_by_b(102)  # ... and starts it again
        a.poll_all()
        server = a.get_server("nomad")
        assert server is not None and server.state == ServerState.RUNNING, server.stop_reason
        assert a.stop_server("nomad").outcome == Outcome.STOPPED
        assert 102 not in ALIVE_PIDS  # the new process was stopped, not the old one
    finally:
        ALIVE_PIDS.clear()
        for app in apps:
            get_db(app).dispose()


def test_start_reach_and_stop_a_server(pg_hub: Hub) -> None:
    hub = pg_hub
    created = hub.api("POST", "/users", json={"usernames": ["alice", "bob"]})
    assert created.status_code == 201, created.text
    assert sorted(u["name"] for u in created.json()) == ["alice", "bob"]
    again = hub.api("POST", "/users", json={"usernames": ["alice", "bob"]})
    assert again.status_code == 409

    started = hub.api("POST", "/users/alice/server")
    assert started.status_code == 201, started.text
    assert hub.api("GET", "/users/alice").json()["servers"][""]["ready"] is True
    assert "/user/alice" in hub.routes()

    alice, bob = hub.token("alice"), hub.token("bob")
    status = _api_status(hub, "alice", alice)
    assert status.status_code == 200, status.text
    assert status.json()["user"] == "alice"
    pid = int(status.json()["pid"])
    assert _api_status(hub, "alice", bob).status_code == 403
    assert server_pids("alice", hub) == [pid]

    assert hub.api("DELETE", "/users/alice/server").status_code == 204
    wait_for(lambda: not pid_alive(pid), timeout=10)
    assert server_pids("alice", hub) == []
    assert "/user/alice" not in hub.routes()
    assert hub.api("GET", "/users/alice").json()["server"] is None


def test_one_server_is_claimed_once_across_workers(pg_hub: Hub) -> None:
    """Start requests for one server racing in both workers: exactly one spawn.

    Straight to the hub, a new connection each, so both workers get some. The
    first round inserts the server row, the second updates the stopped row.
    """
    hub = pg_hub
    racers = 12
    for name in ("racer0", "racer1", "racer2"):
        assert hub.api("POST", f"/users/{name}").status_code == 201
        for round_ in (1, 2):
            start = partial(_server_request, hub, "POST", name, base=hub.hub_url)
            codes = _all_at_once([start] * racers)
            assert set(codes) <= {201, 202, 400}, codes
            wait_for(lambda name=name: hub.api("GET", f"/users/{name}").json()["server"])
            assert start_calls(hub.data_dir, name) == round_
            assert len(server_pids(name)) == 1, codes
            assert hub.api("DELETE", f"/users/{name}/server").status_code == 204
            wait_for(lambda name=name: not server_pids(name), timeout=10)


def test_concurrent_spawns_all_end_ready_and_stop(pg_hub: Hub) -> None:
    hub = pg_hub
    names = [f"crowd{i}" for i in range(CONCURRENT_USERS)]
    assert hub.api("POST", "/users", json={"usernames": names}).status_code == 201
    codes = _all_at_once([partial(_server_request, hub, "POST", n) for n in names])
    assert set(codes) <= {201, 202}, codes

    def ready() -> list[str]:
        users = hub.api("GET", "/users?state=ready").json()
        return sorted(u["name"] for u in users if u["name"] in names)

    wait_for(lambda: ready() == sorted(names), timeout=60, interval=0.5)
    routes = hub.routes()
    assert all(f"/user/{n}" in routes for n in names)

    codes = _all_at_once([partial(_server_request, hub, "DELETE", n) for n in names])
    assert set(codes) <= {202, 204}, codes
    wait_for(lambda: hub.api("GET", "/users?state=active").json() == [], timeout=30)
    wait_for(lambda: not any(server_pids(n) for n in names), timeout=15)
    routes = hub.routes()
    assert not any(f"/user/{n}" in routes for n in names)
    log = hub.log()
    assert "could not serialize" not in log and "deadlock detected" not in log


def test_workers_waiting_for_the_write_lock_keep_serving(pg_hub: Hub) -> None:
    """Hold the hubs' write lock from outside: the lease holder's reconcile loop (a
    lease write each second) waits for it, yet both keep answering reads (psycopg waits
    cooperatively under gevent), and a write waits, then succeeds."""
    from app.db import PG_WRITE_LOCK_KEY

    hub = pg_hub
    engine = create_engine(hub.env["FLASKHUB_DB_URL"])
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": PG_WRITE_LOCK_KEY})
            # The reconcile loop holding the lease waits for the lock to renew it
            # (the other worker only reads the lease).
            wait_for(lambda: _write_lock_waiters(engine) == 1, timeout=10)
            t0 = time.monotonic()
            for _ in range(6):
                response = requests.get(
                    f"{hub.hub_url}/hub/api/users",
                    headers={"Authorization": f"token {hub.admin_token}", "Connection": "close"},
                    timeout=5,
                )
                assert response.status_code == 200
            assert time.monotonic() - t0 < 3
            created: list[int] = []
            writer = threading.Thread(
                target=lambda: created.append(
                    hub.api("POST", "/users/waited", timeout=30).status_code
                )
            )
            writer.start()
            writer.join(timeout=1)
            assert writer.is_alive() and not created  # waiting for the lock
            conn.rollback()  # releases it
        writer.join(timeout=10)
        assert created == [201]
    finally:
        engine.dispose()


def test_tokens_and_the_reconcile_lease_work_without_errors(pg_hub: Hub) -> None:
    hub = pg_hub
    token = hub.token("tokenuser")
    for _ in range(5):
        me = hub.api("GET", "/user", token=token)
        assert me.status_code == 200 and me.json()["name"] == "tokenuser"
    assert hub.api("GET", "/user", token="0" * 32).status_code == 403
    # One worker holds the reconcile lease and keeps renewing it.
    engine = create_engine(hub.env["FLASKHUB_DB_URL"])
    try:

        def lease() -> tuple[str, object] | None:
            with engine.connect() as conn:
                row = conn.execute(
                    text("SELECT holder, expires_at FROM leases WHERE name = 'reconcile'")
                ).first()
                return None if row is None else (row[0], row[1])

        first = wait_for(lease, timeout=10)
        wait_for(lambda: lease()[1] != first[1], timeout=10, interval=0.5)  # type: ignore[index]
    finally:
        engine.dispose()
    log = hub.log()
    assert "Traceback" not in log, log[-5000:]
    assert make_url(hub.env["FLASKHUB_DB_URL"]).password not in log


def test_failed_spawn_is_kept_across_a_hub_restart(pg_hub: Hub) -> None:
    hub = pg_hub
    assert hub.api("POST", "/users/fail-x").status_code == 201
    failed = hub.api("POST", "/users/fail-x/server")
    assert failed.status_code == FAIL_STATUS, failed.text
    hub.restart()
    session = login(hub, "fail-x")
    page = session.get(f"{hub.public_url}/hub/user/fail-x/", timeout=30)
    assert page.status_code == FAIL_STATUS
    assert "Injected failure for fail-x" in page.text
    assert start_calls(hub.data_dir, "fail-x") == 1
    # Both runs of the hub (the log is appended) logged no error with a traceback.
    assert "Traceback" not in hub.log(), hub.log()[-5000:]
