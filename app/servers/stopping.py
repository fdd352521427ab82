"""Stopping and polling: route first, then the process, then the state; servers that
die on their own are noticed."""

from __future__ import annotations

import logging
import time

import gevent
from sqlalchemy import select

from app.models import Server, ServerState, User
from app.servers.core import Handles
from app.servers.naming import find_server, url_prefix
from app.tokens import TokenService

log = logging.getLogger(__name__)

SLOW_STOP_TIMEOUT = 10.0


class Stopping(Handles):
    """stop_server, poll_server and poll_all."""

    def stop_server(self, user_name: str, server_name: str = "") -> int:
        """Stop a server; 204 when stopped, 202 while still stopping.

        A pending spawn is cancelled first. Route, then process, then state.
        """
        with self.db.write() as session:
            server = find_server(session, user_name, server_name)
            if server is None:
                return 204
            server_id = server.id
            if server.state == ServerState.STOPPING:
                return 202
            if server.state not in (ServerState.SPAWNING, ServerState.RUNNING):
                return 204
            server.state = ServerState.STOPPING
        spawn = self.spawns.pop(server_id, None)
        greenlet = gevent.spawn(self._stop, server_id, spawn)
        self.stops[server_id] = greenlet
        if spawn is not None:
            # Interrupting a spawn: the stop goes on in the background.
            return 202
        greenlet.join(timeout=SLOW_STOP_TIMEOUT)
        return 204 if greenlet.dead else 202

    def _stop(self, server_id: int, spawn: gevent.Greenlet | None = None) -> None:
        t0 = time.monotonic()
        ok = False
        try:
            if spawn is not None:
                log.warning("Cancelling the pending spawn of server %s to stop it", server_id)
                spawn.kill(block=True, timeout=5)
            with self.db.read() as session:
                server = session.get(Server, server_id)
                assert server is not None
            self._delete_route(url_prefix(server.user.name, server.name))
            self.spawner_for(server).stop()
            ok = True
        except Exception:
            log.exception("Stopping server %s failed", server_id)
        finally:
            self._mark_stopped(server_id, reason=None)
            self.recorder.server_stop(ok, time.monotonic() - t0)
            self.stops.pop(server_id, None)

    def _mark_stopped(self, server_id: int, reason: str | None) -> None:
        with self.db.write() as session:
            server = session.get(Server, server_id)
            if server is not None:
                server.state = ServerState.STOPPED
                server.url = None
                server.spawner_state = {}
                server.stop_reason = reason
                TokenService(self.db).revoke_for_server(session, server.id)
                spawner = self.spawners.get(server_id)
                if spawner is not None:
                    spawner.clear_state()
        self._drop_spawner(server_id)

    def stop_all(self) -> None:
        """Stop every active server (hub shutdown with cleanup_servers)."""
        with self.db.read() as session:
            rows = session.execute(
                select(User.name, Server.name)
                .join(Server.user)
                .where(Server.state.in_([ServerState.RUNNING, ServerState.SPAWNING]))
            ).all()
        gevent.joinall([gevent.spawn(self.stop_server, u, s) for u, s in rows], timeout=30)

    def poll_server(self, server: Server) -> bool:
        """True if a running server is alive; if it died, clean up after it."""
        if server.state != ServerState.RUNNING:
            return False
        t0 = time.monotonic()
        spawner = self.spawner_for(server)
        status = spawner.poll()
        self.recorder.server_poll(status is None, time.monotonic() - t0)
        if status is None:
            return True
        log.warning("Server of %s exited on its own with status %s", server.user.name, status)
        self._delete_route(url_prefix(server.user.name, server.name))
        self._mark_stopped(
            server.id, reason=f"Your server stopped unexpectedly (exit status {status})."
        )
        return False

    def poll_all(self) -> None:
        """Poll every running server once."""
        with self.db.read() as session:
            servers = session.scalars(
                select(Server).where(Server.state == ServerState.RUNNING)
            ).all()
        for server in servers:
            if server.id not in self.spawns and server.id not in self.stops:
                self.poll_server(server)
