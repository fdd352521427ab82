"""The ServerManager: one per hub process, starting, stopping and polling servers."""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Callable
from datetime import datetime
from typing import Any

import gevent
import requests
from sqlalchemy import select

from app.db import Database
from app.models import Server, ServerState, User
from app.servers.core import stop_quietly
from app.servers.naming import find_server, route_data, state_counts, url_prefix
from app.servers.outcomes import Recorder
from app.servers.starting import Starting
from app.servers.stopping import Stopping
from app.spawners import Spawner, SpawnerError, spawner_class
from app.users import UserService
from proxy.client import ProxyClient, ProxyError

log = logging.getLogger(__name__)

REMOVE_WAIT_SECONDS = 120.0


class ServerManager(Starting, Stopping):
    """Starts, finishes, stops and polls servers; one per hub process."""

    def __init__(
        self,
        db: Database,
        settings: Any,
        users: UserService,
        proxy: ProxyClient,
        *,
        recorder: Recorder | None = None,
        http_get: Callable[..., requests.Response] | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.users = users
        self.proxy = proxy
        self.recorder = recorder or Recorder()
        self.spawner_cls = spawner_class(settings.spawner)
        self.http_get = http_get or requests.get
        # Handles, keyed by server id; the database stays the truth.
        self.spawners: dict[int, Spawner] = {}
        self.spawns: dict[int, gevent.Greenlet] = {}
        self.stops: dict[int, gevent.Greenlet] = {}
        self._live_spawners: weakref.WeakSet[Spawner] = weakref.WeakSet()

    def counts(self) -> dict[str, int]:
        """State counts computed on request (drives limits and gauges)."""
        with self.db.read() as session:
            return state_counts(session)

    def live_spawner_count(self) -> int:
        """Spawner objects alive in this process (they exist only while needed)."""
        return len(self._live_spawners)

    def progress_events(self, server_id: int) -> list[dict[str, Any]]:
        """Progress the spawner reported so far (in the process that runs the spawn)."""
        spawner = self.spawners.get(server_id)
        return list(spawner.progress_events) if spawner else []

    def clear_failure(self, user_name: str, server_name: str = "") -> None:
        """Forget a failed spawn (an explicit request to try again)."""
        with self.db.write() as session:
            server = find_server(session, user_name, server_name)
            if server is not None and server.state == ServerState.FAILED:
                server.state = ServerState.STOPPED
                server.failure_message = None
                server.failure_status = None
                self.spawners.pop(server.id, None)
            if server is not None:
                server.stop_reason = None

    def record_activity(
        self, user_id: int, when: datetime | None, servers: dict[str, datetime]
    ) -> None:
        """Move a user's and their servers' last_activity forward (never back)."""
        latest = max([t for t in (when, *servers.values()) if t is not None], default=None)
        with self.db.write() as session:
            user = session.get(User, user_id)
            if user is None or latest is None:
                return
            user.last_activity = _later(user.last_activity, latest)
            for server in user.servers:
                if server.name in servers:
                    server.last_activity = _later(server.last_activity, servers[server.name])

    def ensure_route(self, server: Server) -> bool:
        """Re-add a running server's route if the proxy lost it; True if it did."""
        prefix = url_prefix(server.user.name, server.name)
        if server.url is None or self.proxy.get_route(prefix) is not None:
            return False
        t0 = time.monotonic()
        try:
            self.proxy.add_route(prefix, server.url, route_data(server.user.name, server.name))
        except ProxyError:
            self.recorder.proxy_add(False, time.monotonic() - t0)
            raise
        self.recorder.proxy_add(True, time.monotonic() - t0)
        log.warning("The proxy had no route for %s: re-added it (-> %s)", prefix, server.url)
        return True

    def remove_server(self, user_name: str, server_name: str) -> bool:
        """Delete a stopped (or failed) named server's row, with its tokens and OAuth client."""
        # Drops a failed spawn's handle, kept in memory until cleared, before its id goes.
        self.clear_failure(user_name, server_name)
        with self.db.write() as session:
            server = find_server(session, user_name, server_name)
            if server is None or server.state not in (ServerState.STOPPED, ServerState.FAILED):
                return False
            session.delete(server)
        log.info("Removed server %r of %s", server_name, user_name)
        return True

    def remove_when_stopped(self, user_name: str, server_name: str) -> None:
        """Remove a server once its stop finishes (bounded; run it in a greenlet)."""
        deadline = time.monotonic() + REMOVE_WAIT_SECONDS
        while time.monotonic() < deadline:
            server = self.get_server(user_name, server_name)
            if server is None or server.state != ServerState.STOPPING:
                break
            gevent.sleep(0.5)
        if not self.remove_server(user_name, server_name):
            log.warning("Server %r of %s was not removed: it did not stop", server_name, user_name)

    def recover(self) -> None:
        """After a hub restart: fail interrupted spawns, finish interrupted stops.

        Runs once, in `flaskhub run`, before any worker exists.
        """
        with self.db.read() as session:
            stuck = session.scalars(
                select(Server).where(Server.state.in_([ServerState.SPAWNING, ServerState.STOPPING]))
            ).all()
        for server in stuck:
            spawner = self.spawner_for(server)
            stop_quietly(spawner)
            self._delete_route(url_prefix(server.user.name, server.name))
            if server.state == ServerState.SPAWNING:
                self._record_failure(
                    server.id,
                    None,
                    SpawnerError("The hub restarted while the server was starting."),
                )
            else:
                self._mark_stopped(server.id, reason=None)
            self._drop_spawner(server.id)
        self.poll_all()


def _later(a: datetime | None, b: datetime) -> datetime:
    return b if a is None or b > a else a
