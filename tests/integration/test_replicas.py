"""Two hub replicas (`flaskhub run` twice, on other ports) on one PostgreSQL and one
CHP act as one hub.

Replica `a` runs CHP; replica `b` is pointed at it (proxy_auto_start=false,
proxy_api_url, proxy_auth_token). Both have the same cookie_secret, so a login
made through one is good on the other. Each runs two workers.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import create_engine, select, text

from app.background import MANAGED_ROUTE_CHECK_SECONDS
from tests.helpers import wait_for
from tests.integration.conftest import Hub, login, pid_alive, process_tree, server_pids
from tests.postgres_server import Postgres
from tests.spawners import SLOW_SECONDS, release_held, start_calls

pytestmark = pytest.mark.integration

POLL_INTERVAL = 2
# A spawn taken over from a dead replica gets what is left of it (app.servers.manager).
HTTP_TIMEOUT = 10


@dataclass
class Replicas:
    a: Hub
    b: Hub
    db_url: str

    def other(self, hub: Hub) -> Hub:
        return self.b if hub is self.a else self.a


@pytest.fixture(scope="module")
def replicas(postgres: Postgres, hub_factory: Callable[..., Hub]) -> Replicas:
    """Replica a (with CHP) and b (pointed at a's CHP), on one database."""
    shared: dict[str, Any] = {
        "db_url": postgres.create_database(),
        "cookie_secret": secrets.token_hex(32),
        "proxy_auth_token": secrets.token_hex(16),
        "spawner": "tests.spawners:FaultSpawner",
        "slow_spawn_timeout": 0.5,
        "poll_interval": POLL_INTERVAL,
        "http_timeout": HTTP_TIMEOUT,
        "workers": 2,
    }
    a = hub_factory(**shared)
    b = hub_factory(
        **shared,
        proxy_auto_start=False,
        proxy_api_url=a.proxy_api_url,
        # b's public URL is a's CHP too (JUPYTERHUB_* of the servers it starts).
        port=int(a.public_url.rsplit(":", 1)[1]),
        proxy_api_port=int(a.proxy_api_url.rsplit(":", 1)[1]),
    )
    for hub in (a, b):
        (hub.data_dir / "proxy_auth_token").write_text(shared["proxy_auth_token"])
    return Replicas(a, b, shared["db_url"])


def _direct(hub: Hub, method: str, path: str, **kwargs: Any) -> requests.Response:
    """/hub/api<path> on this replica itself (not through CHP, whose default route is a)."""
    headers = {"Authorization": f"token {hub.admin_token}", "Connection": "close"}
    kwargs.setdefault("timeout", 30)
    return requests.request(method, f"{hub.hub_url}/hub/api{path}", headers=headers, **kwargs)


def _pending(hub: Hub, name: str) -> str | None:
    return _direct(hub, "GET", f"/users/{name}").json()["pending"]


def _ready(hub: Hub, name: str) -> bool:
    server = _direct(hub, "GET", f"/users/{name}").json()["servers"].get("")
    return bool(server and server["ready"])


def _progress(hub: Hub, name: str, into: list[str]) -> None:
    """Read a spawn's progress stream from this replica to its end (its messages)."""
    with _direct(hub, "GET", f"/users/{name}/server/progress", stream=True, timeout=60) as r:
        assert r.status_code == 200, r.text
        for line in r.iter_lines(decode_unicode=True):
            if line.startswith("data:"):
                event = json.loads(line[5:])
                into.append("READY" if event.get("ready") else event.get("message", ""))


def _lease_holder(db_url: str) -> str | None:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT holder FROM leases WHERE name = 'reconcile'")).scalar()
    finally:
        engine.dispose()


def _lease_expiry(db_url: str) -> object:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            return conn.execute(
                text("SELECT expires_at FROM leases WHERE name = 'reconcile'")
            ).scalar()
    finally:
        engine.dispose()


def _holder_pid(db_url: str) -> int | None:
    holder = _lease_holder(db_url)
    return int(holder.split(":")[1]) if holder else None


def _kill(hub: Hub) -> list[int]:
    """kill -9 the replica: its arbiter and its workers (not its user servers, not CHP)."""
    pids = [p for p in process_tree(hub.process.pid) if p in _hub_pids(hub)]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    hub.process.wait(timeout=10)
    return pids


def _hub_pids(hub: Hub) -> set[int]:
    """The replica's own processes: its arbiter and its gunicorn workers (no CHP, no
    user server)."""
    found = set()
    for pid in process_tree(hub.process.pid):
        with contextlib.suppress(OSError):
            proc = Path(f"/proc/{pid}")
            if b"JUPYTERHUB_USER=" in (proc / "environ").read_bytes():
                continue
            if b"gunicorn" in (proc / "cmdline").read_bytes():
                found.add(pid)
    return found


def test_a_spawn_through_one_is_pending_then_ready_in_the_other(replicas: Replicas) -> None:
    a, b = replicas.a, replicas.b
    name = "slow-replicas"
    assert _direct(a, "POST", f"/users/{name}").status_code == 201
    assert _direct(b, "POST", f"/users/{name}/server").status_code == 202
    assert _pending(a, name) == "spawn"
    # Both replicas stream the progress of the spawn b runs.
    streams: dict[str, list[str]] = {"a": [], "b": []}
    readers = [
        threading.Thread(target=_progress, args=(hub, name, streams[key]))
        for key, hub in (("a", a), ("b", b))
    ]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join(timeout=SLOW_SECONDS + 30)
    for key, messages in streams.items():
        assert messages[-1] == "READY", (key, messages)
        assert "Injected slow step 3 of 3" in messages, (key, messages)
    assert _ready(a, name) and _ready(b, name)
    assert _pending(a, name) is None
    assert f"/user/{name}" in a.routes()
    # Through CHP (whose default route is a) to the server b started.
    token = a.token(name)
    status = a.get(f"/user/{name}/api/status", headers={"Authorization": f"token {token}"})
    assert status.status_code == 200 and status.json()["user"] == name
    # A login made through one replica is good on the other (one cookie secret).
    browser = login(a, "visitor")
    home = browser.get(f"{b.hub_url}/hub/home", timeout=10, allow_redirects=False)
    assert home.status_code == 200 and "visitor" in home.text
    # Stopped through a: b's process goes.
    pids = server_pids(name)
    assert _direct(a, "DELETE", f"/users/{name}/server").status_code in (202, 204)
    wait_for(lambda: not any(pid_alive(p) for p in pids), timeout=15)
    wait_for(lambda: not _ready(b, name), timeout=10)


def test_every_worker_of_every_replica_beats(replicas: Replicas) -> None:
    a, b = replicas.a, replicas.b

    def beating() -> set[int]:
        engine = create_engine(replicas.db_url)
        try:
            with engine.connect() as conn:
                rows = conn.execute(
                    text(
                        "SELECT process FROM heartbeats"
                        " WHERE seen_at > statement_timestamp() - interval '5 seconds'"
                    )
                ).scalars()
                return {int(name.split(":")[1]) for name in rows}
        finally:
            engine.dispose()

    workers = {p for hub in (a, b) for p in _hub_pids(hub)}
    workers -= {a.process.pid, b.process.pid}  # the arbiters serve nothing
    assert len(workers) == 4  # two each
    wait_for(lambda: workers <= beating(), timeout=10)


def test_a_replica_killed_mid_spawn_has_its_spawn_failed_by_the_other(
    replicas: Replicas,
) -> None:
    a, b = replicas.a, replicas.b
    name = "never-replica"  # its process starts, then never answers HTTP
    assert _direct(a, "POST", f"/users/{name}").status_code == 201
    assert _direct(b, "POST", f"/users/{name}/server").status_code == 202
    wait_for(lambda: server_pids(name), timeout=30)
    assert _pending(a, name) == "spawn"
    killed = _kill(b)
    # Within a check interval a (which holds or takes over the lease) takes the spawn
    # over, and fails it when what is left of its http_timeout runs out.
    wait_for(
        lambda: _pending(a, name) is None, timeout=MANAGED_ROUTE_CHECK_SECONDS + HTTP_TIMEOUT + 5
    )
    model = _direct(a, "GET", f"/users/{name}").json()
    assert model["servers"] == {}, model
    wait_for(lambda: not server_pids(name), timeout=15)
    session = login(a, name)
    page = session.get(f"{a.public_url}/hub/spawn-pending/{name}", timeout=30)
    assert page.status_code >= 400
    assert "The hub process that was starting this server (pid " in page.text
    assert any(f"pid {pid} on" in page.text for pid in killed), page.text
    b.restart()
    assert _direct(b, "GET", f"/users/{name}").status_code == 200


def test_a_replica_killed_mid_spawn_has_its_spawn_finished_by_the_other(
    replicas: Replicas,
) -> None:
    """As in a rolling upgrade: the replica whose spawn was waiting for the server to
    answer goes; the other finishes it, with the same process, routed."""
    a, b = replicas.a, replicas.b
    name = "held-takeover"  # its process starts, then waits for release_held to listen
    assert _direct(a, "POST", f"/users/{name}").status_code == 201
    assert _direct(b, "POST", f"/users/{name}/server").status_code == 202
    wait_for(lambda: _stored_url(replicas, name), timeout=30)  # started, waiting for HTTP
    pids = server_pids(name)
    _kill(b)
    release_held(b.data_dir, name)
    wait_for(lambda: _ready(a, name), timeout=MANAGED_ROUTE_CHECK_SECONDS + HTTP_TIMEOUT + 5)
    # The very server b started: a started nothing, and b's process serves.
    assert start_calls(a.data_dir, name) == 0
    assert pids[0] in server_pids(name)
    # Routed by a. The server asks b's address about tokens (as a stack's servers ask
    # `hub`, whichever replica answers): once b is back, it answers its owner.
    b.restart()
    token = _direct(a, "POST", f"/users/{name}/tokens", json={}).json()["token"]
    status = requests.get(
        f"{a.public_url}/user/{name}/api/status",
        headers={"Authorization": f"token {token}"},
        timeout=30,
    )
    assert status.status_code == 200 and status.json()["user"] == name


def _stored_url(replicas: Replicas, name: str) -> str | None:
    engine = create_engine(replicas.db_url)
    try:
        with engine.connect() as conn:
            return conn.execute(
                text(
                    "SELECT s.url FROM servers s JOIN users u ON u.id = s.user_id"
                    " WHERE u.name = :name AND s.name = ''"
                ),
                {"name": name},
            ).scalar()
    finally:
        engine.dispose()


def test_the_reconcile_loop_runs_in_one_and_moves_when_it_dies(replicas: Replicas) -> None:
    a, b = replicas.a, replicas.b
    holder_pid = wait_for(lambda: _holder_pid(replicas.db_url), timeout=10)
    holder = a if holder_pid in _hub_pids(a) else b
    assert holder_pid in _hub_pids(holder)
    survivor = replicas.other(holder)
    # One loop: the holder keeps renewing it, nobody else takes it meanwhile.
    first = _lease_expiry(replicas.db_url)
    wait_for(lambda: _lease_expiry(replicas.db_url) != first, timeout=10, interval=0.5)
    assert _holder_pid(replicas.db_url) == holder_pid
    _kill(holder)
    # Taken over within one interval by a worker of the other replica.
    wait_for(
        lambda: _holder_pid(replicas.db_url) in _hub_pids(survivor),
        timeout=MANAGED_ROUTE_CHECK_SECONDS,
    )
    assert re.search(rf"Taking over the reconcile loop from [^ ]+:{holder_pid}:", survivor.log())


# -- another host: what its heartbeat says (no second host here, so the rows of
# -- "elsewhere" are written as that host's processes would write them).

ELSEWHERE = "elsewhere.example:4242:777"


def _heartbeats(postgres: Postgres) -> tuple[Any, Any]:
    from app.db import Database
    from app.heartbeats import Heartbeats
    from app.migrations import upgrade

    url = postgres.create_database()
    upgrade(url)
    db = Database(url)
    return db, Heartbeats(db)


def _heard_from(db: Any, name: str, seconds_ago: float) -> None:
    with db.sessions() as session:
        session.execute(
            text(
                "INSERT INTO heartbeats (process, seen_at) VALUES"
                " (:name, statement_timestamp() - make_interval(secs => :ago))"
                " ON CONFLICT (process) DO UPDATE SET seen_at = excluded.seen_at"
            ),
            {"name": name, "ago": seconds_ago},
        )
        session.commit()


def _steady(heartbeats: Any) -> None:
    """As if this process had been beating for longer than DEAD_AFTER_SECONDS."""
    from app.heartbeats import DEAD_AFTER_SECONDS

    heartbeats.beat()
    heartbeats.steady_since -= DEAD_AFTER_SECONDS + 1


def test_a_process_of_another_host_is_dead_once_its_heartbeat_stops(postgres: Postgres) -> None:
    from datetime import timedelta

    from app.background import held_by_another
    from app.heartbeats import DEAD_AFTER_SECONDS
    from app.models import Lease, utcnow
    from app.processes import this_process

    db, heartbeats = _heartbeats(postgres)
    try:
        _heard_from(db, ELSEWHERE, seconds_ago=DEAD_AFTER_SECONDS + 5)
        _heard_from(db, "elsewhere.example:1:1", seconds_ago=1)
        heartbeats.beat()
        # Just started beating ourselves: everyone's silence may be the database's.
        assert heartbeats.alive(ELSEWHERE) is None
        _steady(heartbeats)
        assert heartbeats.alive(ELSEWHERE) is False
        assert heartbeats.alive("elsewhere.example:1:1") is True
        assert heartbeats.alive("elsewhere.example:2:2") is None  # never beat
        assert heartbeats.alive(this_process()) is True  # by its pid
        in_a_minute = utcnow() + timedelta(seconds=60)
        lease = Lease(name="reconcile", holder=ELSEWHERE, expires_at=in_a_minute)
        assert not held_by_another(lease, this_process(), utcnow(), heartbeats.alive)
        lease.holder = "elsewhere.example:1:1"
        assert held_by_another(lease, this_process(), utcnow(), heartbeats.alive)
    finally:
        db.dispose()


def test_a_spawn_of_a_silent_replica_on_another_host_is_failed(
    postgres: Postgres, clean_env: Path
) -> None:
    from app import create_app
    from app.db import get_db
    from app.migrations import upgrade
    from app.models import Server, ServerState, User, utcnow
    from app.servers import get_servers

    url = postgres.create_database()
    upgrade(url)
    app = create_app({"db_url": url, "data_dir": str(clean_env / "data")})
    servers, db = get_servers(app), get_db(app)
    try:
        for name in ("far-silent", "far-beating"):
            servers.users.create_many([name])
            with db.write() as session:
                user = session.scalars(select(User).where(User.name == name)).one()
                owner = f"elsewhere.example:{len(name)}{user.id}:1"
                session.add(
                    Server(
                        user=user,
                        name="",
                        state=ServerState.SPAWNING,
                        owner=owner,
                        started=utcnow(),
                    )
                )
            _heard_from(db, owner, seconds_ago=60 if name == "far-silent" else 0)
        _steady(servers.heartbeats)
        assert servers.settle_abandoned() == 1
        silent = servers.get_server("far-silent")
        assert silent is not None and silent.state == ServerState.FAILED
        assert silent.failure_message.startswith(
            "The hub process that was starting this server (pid "
        )
        assert "on elsewhere.example) stopped: not heard from for" in silent.failure_message
        beating = servers.get_server("far-beating")
        assert beating is not None and beating.state == ServerState.SPAWNING
    finally:
        db.dispose()
