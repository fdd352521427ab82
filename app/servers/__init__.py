"""Domain: the spawn lifecycle of users' servers.

The database is the truth about every server's state; this package moves
servers between states and keeps in-memory handles (spawner objects, the
greenlet of a pending spawn or stop) only while they are needed.

``start_server`` has an outcome at every exit (``SpawnStatus``), each with
its HTTP status and message; finalisation of a spawn happens only in
``finish_spawn``; ``stop_server`` removes the route first, then the process,
then the state.
"""

from __future__ import annotations

from flask import Flask, current_app

from app.servers.manager import ServerManager
from app.servers.naming import access_scopes, client_id, route_data, state_counts, url_prefix
from app.servers.outcomes import Recorder, ServerError, SpawnResult, SpawnStatus
from proxy.client import ProxyClient

__all__ = [
    "Recorder",
    "ServerError",
    "ServerManager",
    "SpawnResult",
    "SpawnStatus",
    "access_scopes",
    "client_id",
    "route_data",
    "get_servers",
    "init_app",
    "state_counts",
    "url_prefix",
]


def init_app(app: Flask) -> None:
    """Create this process's ServerManager (and proxy client) on the app."""
    from app.db import get_db

    settings = app.config["FLASKHUB"]
    users = app.extensions["flaskhub.users"]
    proxy = ProxyClient(settings.proxy_api_url, settings.proxy_auth_token)
    recorder = app.extensions.get("flaskhub.recorder")
    app.extensions["flaskhub.proxy"] = proxy
    app.extensions["flaskhub.servers"] = ServerManager(
        get_db(app), settings, users, proxy, recorder=recorder
    )


def get_servers(app: Flask | None = None) -> ServerManager:
    """The ServerManager of the given or current app."""
    return (app or current_app).extensions["flaskhub.servers"]
