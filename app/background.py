"""The reconcile loop: routes vs. the database, polling servers, activity from the proxy.

One loop runs at a time across all workers and hosts: the holder of the
`reconcile` lease row runs it and renews the lease; when the holder dies its
lease expires and another worker takes over.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import gevent
from flask import Flask
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.db import get_db
from app.models import Lease, Server, ServerState, utcnow
from app.servers import ServerManager, get_servers, route_data, url_prefix
from proxy.client import ProxyError

log = logging.getLogger(__name__)

LEASE_NAME = "reconcile"
TICK_SECONDS = 1.0
MANAGED_ROUTE_CHECK_SECONDS = 5.0
EXTERNAL_ROUTE_CHECK_SECONDS = 30.0


def check_routes(servers: ServerManager) -> dict[str, int]:
    """Make CHP's table match the database: add missing routes, delete stale ones."""
    t0 = time.monotonic()
    settings = servers.settings
    routes = servers.proxy.get_all_routes()
    servers.recorder.proxy_poll(time.monotonic() - t0)
    with servers.db.read() as session:
        rows = session.scalars(
            select(Server).where(Server.state.in_([ServerState.RUNNING, ServerState.SPAWNING]))
        ).all()
    wanted: dict[str, tuple[str, dict[str, Any]]] = {
        "/": (settings.hub_url, {"hub": True, "jupyterhub": True})
    }
    starting = set()
    for server in rows:
        prefix = url_prefix(server.user.name, server.name)
        if server.state == ServerState.SPAWNING or server.url is None:
            starting.add(prefix)  # finish_spawn owns its route until it is running
            continue
        wanted[prefix] = (server.url, route_data(server.user.name, server.name))
        _record_route_activity(servers, server, routes.get(prefix))
    added = deleted = 0
    for prefix, (target, data) in wanted.items():
        route = routes.get(prefix)
        if route is None or route["target"] != target:
            log.warning("Route %s missing from the proxy (or wrong): adding -> %s", prefix, target)
            _timed(servers.recorder.proxy_add, servers.proxy.add_route, prefix, target, data)
            added += 1
    for prefix, route in routes.items():
        if route["data"].get("jupyterhub") and prefix not in wanted and prefix not in starting:
            log.warning("Deleting stale route %s -> %s", prefix, route["target"])
            _timed(servers.recorder.proxy_delete, servers.proxy.delete_route, prefix)
            deleted += 1
    servers.recorder.check_routes(time.monotonic() - t0)
    return {"added": added, "deleted": deleted}


def _timed(report: Callable[[bool, float], None], call: Callable[..., Any], *args: Any) -> None:
    """Make a route change and report its outcome and duration (as finish_spawn does)."""
    t0 = time.monotonic()
    try:
        call(*args)
    except ProxyError:
        report(False, time.monotonic() - t0)
        raise
    report(True, time.monotonic() - t0)


def _record_route_activity(servers: ServerManager, server: Server, route: Any) -> None:
    seen = route.get("last_activity") if route else None
    if seen is not None and (server.last_activity is None or seen > server.last_activity):
        servers.record_activity(server.user_id, seen, {server.name: seen})


def acquire_lease(app: Flask, holder: str, ttl: float) -> bool:
    """Take or renew the reconcile lease; True if this holder has it now."""
    now = utcnow()
    try:
        with get_db(app).write() as session:
            lease = session.get(Lease, LEASE_NAME)
            if lease is None:
                session.add(
                    Lease(name=LEASE_NAME, holder=holder, expires_at=now + timedelta(seconds=ttl))
                )
                return True  # committed on leaving the block, or IntegrityError
            if lease.holder != holder and lease.expires_at > now:
                return False
            lease.holder = holder
            lease.expires_at = now + timedelta(seconds=ttl)
            return True
    except IntegrityError:
        # Another worker inserted the first lease row at the same moment: it holds it.
        # (Write transactions are serialised, so this is a safety net.)
        return False


class Reconciler:
    """Runs check_routes and poll_all on their intervals while holding the lease."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.settings = app.config["FLASKHUB"]
        self.holder = f"{socket.gethostname()}:{os.getpid()}"
        self.route_interval = (
            MANAGED_ROUTE_CHECK_SECONDS
            if self.settings.proxy_auto_start
            else EXTERNAL_ROUTE_CHECK_SECONDS
        )

    def run_forever(self) -> None:
        next_routes = next_poll = 0.0
        ttl = max(self.route_interval * 3, 15.0)
        while True:
            try:
                if acquire_lease(self.app, self.holder, ttl):
                    now = time.monotonic()
                    servers = get_servers(self.app)
                    if now >= next_routes:
                        next_routes = now + self.route_interval
                        self._check_routes(servers)
                    if now >= next_poll:
                        next_poll = now + self.settings.poll_interval
                        servers.poll_all()
            except Exception:
                log.exception("Reconcile pass failed; trying again")
            gevent.sleep(TICK_SECONDS)

    def _check_routes(self, servers: ServerManager) -> None:
        try:
            check_routes(servers)
        except ProxyError as e:
            log.error("Route check skipped: %s", e)


def start(app: Flask) -> gevent.Greenlet:
    """Start the reconcile loop in this worker (gunicorn's post_worker_init)."""
    return gevent.spawn(Reconciler(app).run_forever)
