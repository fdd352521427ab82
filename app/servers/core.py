"""The handles every part of the lifecycle shares: dependencies, spawner objects,
pending greenlets, and the few operations both starting and stopping use."""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Callable
from typing import Any

import gevent
import requests

from app.db import Database
from app.models import Server
from app.servers.naming import find_server, url_prefix
from app.servers.outcomes import Recorder
from app.spawners import Spawner
from app.users import UserService
from proxy.client import ProxyClient, ProxyError

log = logging.getLogger(__name__)


class Handles:
    """Dependencies and in-memory handles, keyed by server id; the database stays the truth."""

    db: Database
    settings: Any
    users: UserService
    proxy: ProxyClient
    recorder: Recorder
    spawner_cls: type[Spawner]
    http_get: Callable[..., requests.Response]
    spawners: dict[int, Spawner]
    spawns: dict[int, gevent.Greenlet]
    stops: dict[int, gevent.Greenlet]
    _live_spawners: weakref.WeakSet[Spawner]

    def get_server(self, user_name: str, server_name: str = "") -> Server | None:
        with self.db.read() as session:
            return find_server(session, user_name, server_name)

    def _make_spawner(self, server: Server) -> Spawner:
        spawner = self.spawner_cls(
            user_name=server.user.name,
            server_name=server.name,
            service_prefix=url_prefix(server.user.name, server.name),
            settings=self.settings,
            user_options=server.user_options,
        )
        spawner.load_state(server.spawner_state or {})
        self.spawners[server.id] = spawner
        self._live_spawners.add(spawner)
        return spawner

    def spawner_for(self, server: Server) -> Spawner:
        """The handle on a server's process, rebuilt from its stored state if needed.

        Also rebuilt when the stored state is another process's: another worker
        stopped and restarted the server since this handle was made.
        """
        spawner = self.spawners.get(server.id)
        if spawner is None or (
            server.spawner_state and spawner.get_state() != server.spawner_state
        ):
            spawner = self._make_spawner(server)
        return spawner

    def _drop_spawner(self, server_id: int) -> None:
        """Forget a server's handle once it stopped."""
        self.spawners.pop(server_id, None)

    def _delete_route(self, prefix: str) -> None:
        t0 = time.monotonic()
        try:
            self.proxy.delete_route(prefix)
            self.recorder.proxy_delete(True, time.monotonic() - t0)
        except ProxyError as e:
            self.recorder.proxy_delete(False, time.monotonic() - t0)
            log.error("Could not delete route %s: %s (the route check will retry)", prefix, e)


def stop_quietly(spawner: Spawner) -> None:
    try:
        spawner.stop(now=True)
    except Exception:
        log.exception("Could not stop the server of %s", spawner.user_name)
