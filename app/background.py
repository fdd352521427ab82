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
from datetime import timedelta

import gevent
from flask import Flask
from sqlalchemy.exc import IntegrityError

from app.config import get_settings
from app.db import get_db
from app.models import Lease, utcnow
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
    """Runs the route check and poll_all on their intervals while holding the lease."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.settings = get_settings(app)
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
            servers.check_routes()
        except ProxyError as e:
            log.error("Route check skipped: %s", e)


def start(app: Flask) -> gevent.Greenlet:
    """Start the reconcile loop in this worker (gunicorn's post_worker_init)."""
    return gevent.spawn(Reconciler(app).run_forever)
