"""The reconcile loop: routes vs. the database, polling servers, activity from the proxy.

One loop runs at a time across all workers and hosts: the holder of the
`reconcile` lease row runs it and renews the lease; when the holder dies its
lease expires and another worker takes over (at once on the holder's host,
which can tell that the holder's process is gone; from another host once its
heartbeat stops, app/heartbeats.py). Other workers only read the
lease: the write lock is taken to renew our own lease or to take a free one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta

import gevent
from flask import Flask
from sqlalchemy.exc import IntegrityError

from app.config import get_settings
from app.db import DATABASE_DOWN, get_db
from app.heartbeats import get_heartbeats
from app.models import Lease, ServerState, utcnow
from app.processes import process_alive, this_process
from app.servers import ServerManager, get_servers
from proxy.client import ProxyError

log = logging.getLogger(__name__)

LEASE_NAME = "reconcile"
TICK_SECONDS = 1.0
MANAGED_ROUTE_CHECK_SECONDS = 5.0
EXTERNAL_ROUTE_CHECK_SECONDS = 30.0


def acquire_lease(app: Flask, holder: str, ttl: float) -> bool:
    """Take or renew the reconcile lease; True if this holder has it now."""
    now = utcnow()
    db = get_db(app)
    alive = get_heartbeats(app).alive
    with db.read() as session:
        if held_by_another(session.get(Lease, LEASE_NAME), holder, now, alive):
            return False
    try:
        with db.write() as session:
            lease = session.get(Lease, LEASE_NAME)
            if lease is None:
                session.add(
                    Lease(name=LEASE_NAME, holder=holder, expires_at=now + timedelta(seconds=ttl))
                )
                return True  # committed on leaving the block, or IntegrityError
            if held_by_another(lease, holder, now, alive):
                return False
            if lease.holder != holder:
                log.info("Taking over the reconcile loop from %s", lease.holder)
            lease.holder = holder
            lease.expires_at = now + timedelta(seconds=ttl)
            return True
    except IntegrityError:
        # Another worker inserted the first lease row at the same moment: it holds it.
        # (Write transactions are serialised, so this is a safety net.)
        return False


def held_by_another(
    lease: Lease | None,
    holder: str,
    now: datetime,
    alive: Callable[[str | None], bool | None] = process_alive,
) -> bool:
    """True if another process holds the lease: unexpired, and not known to be dead
    (by its pid on this host, by its heartbeat on another)."""
    return (
        lease is not None
        and lease.holder != holder
        and lease.expires_at > now
        and alive(lease.holder) is not False
    )


class Reconciler:
    """While holding the lease: settles abandoned spawns every tick, runs the route
    check and poll_all on their intervals."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.settings = get_settings(app)
        self.holder = this_process()
        # A running server whose route the loop watches, and the route (see _routes_lost).
        self.sentinel: tuple[int, str] | None = None
        # When the database stopped answering this loop, while it does not.
        self.db_down_since: float | None = None
        self.route_interval = (
            MANAGED_ROUTE_CHECK_SECONDS
            if self.settings.proxy_auto_start
            else EXTERNAL_ROUTE_CHECK_SECONDS
        )

    def run_forever(self) -> None:
        next_routes = next_poll = 0.0
        # Renewed every tick; expired within one route interval after its holder died.
        ttl = max(self.route_interval - TICK_SECONDS, 3 * TICK_SECONDS)
        while True:
            try:
                if acquire_lease(self.app, self.holder, ttl):
                    now = time.monotonic()
                    servers = get_servers(self.app)
                    # Spawns and stops whose worker or replica died: every tick.
                    servers.settle_abandoned()
                    if now >= next_routes or self._routes_lost(servers):
                        next_routes = now + self.route_interval
                        self._check_routes(servers)
                        servers.heartbeats.forget_old()
                    # A lost machine (a swarm node down or drained) does not wait for it.
                    if now >= next_poll or servers.machines_changed():
                        next_poll = now + self.settings.poll_interval
                        servers.poll_all()
            except DATABASE_DOWN as e:
                self._database_down(e)
            except Exception:
                log.exception("Reconcile pass failed; trying again")
            else:
                self._database_back()
            gevent.sleep(TICK_SECONDS)

    def _database_down(self, error: Exception) -> None:
        """Say once per outage that the loop waits for the database (no traceback each tick)."""
        if self.db_down_since is None:
            self.db_down_since = time.monotonic()
            cause = getattr(error, "orig", None) or error
            log.error("Reconcile pass skipped: the database is unreachable (%s); retrying", cause)

    def _database_back(self) -> None:
        if self.db_down_since is not None:
            down = time.monotonic() - self.db_down_since
            log.info("The database is reachable again (after %.0f s): reconciling", down)
            self.db_down_since = None

    def _check_routes(self, servers: ServerManager) -> None:
        try:
            servers.check_routes()
        except ProxyError as e:
            log.error("Route check skipped: %s", e)
            return
        self.sentinel = None

    def _routes_lost(self, servers: ServerManager) -> bool:
        """True if a proxy instance is new, or lost a running server's route: it restarted.

        One route looked up each tick, so a restarted CHP gets its routes back
        within a tick or two instead of at the next check.
        """
        new = servers.routes.unchecked()
        if new:
            log.warning("New proxy instance(s) %s: checking all routes", ", ".join(new))
            return True
        if self.sentinel is None:
            running = servers.rows.in_states(ServerState.RUNNING)
            if not running:
                return False
            first = running[0]
            self.sentinel = (first.id, servers.routes.spec(first.user.name, first.name))
        server_id, route = self.sentinel
        lost = servers.routes.lost(route)
        # A stop deletes the route after it marks the server stopping: read after the
        # route, the row tells a stop (or a death) from a proxy that lost the route.
        if lost and not _still_running(servers, server_id):
            self.sentinel = None
            return False
        if lost:
            log.warning("The proxy lost the route %s (restarted?): checking all", route)
        return lost


def _still_running(servers: ServerManager, server_id: int) -> bool:
    server = servers.rows.by_id(server_id)
    return server is not None and server.state == ServerState.RUNNING


def start(app: Flask) -> gevent.Greenlet:
    """Start this worker's heartbeat and its reconcile loop (gunicorn's post_worker_init)."""
    heartbeats = get_heartbeats(app)
    if heartbeats.enabled:
        gevent.spawn(heartbeats.run_forever)
    return gevent.spawn(Reconciler(app).run_forever)
