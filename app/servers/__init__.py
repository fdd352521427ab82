"""Domain: the spawn lifecycle of users' servers.

The database is the truth about every server's state; this package moves
servers between states and keeps in-memory handles (spawner objects, the
greenlet of a pending spawn or stop) only while they are needed. It answers
with domain outcomes (``app.outcomes``), never HTTP status codes.
"""

from __future__ import annotations

from flask import Flask, current_app

from app.config import get_settings
from app.db import get_db
from app.heartbeats import get_heartbeats
from app.oauth import get_oauth
from app.scopes import access_scopes
from app.servers.counts import state_counts
from app.servers.manager import ServerManager
from app.servers.names import client_id, route_data, url_prefix
from app.servers.recorder import Recorder, SpawnStatus
from app.servers.routes import Routes
from app.servers.rows import ServerRows
from app.servers.visit import Next, Visit
from app.tokens import get_tokens
from app.users import get_users
from proxy.instances import ProxyInstances

__all__ = [
    "Next",
    "Recorder",
    "Routes",
    "ServerManager",
    "SpawnStatus",
    "Visit",
    "access_scopes",
    "client_id",
    "get_servers",
    "init_app",
    "route_data",
    "state_counts",
    "url_prefix",
]


def init_app(app: Flask) -> None:
    """Create this process's ServerManager, with the proxies it routes through."""
    settings = get_settings(app)
    recorder = app.extensions.get("flaskhub.recorder") or Recorder()
    routes = Routes(
        ProxyInstances(
            settings.proxy_api_urls,
            settings.proxy_auth_token,
            every_address=settings.proxy_api_every_address,
        ),
        recorder,
        settings.subdomain_host,
    )
    db = get_db(app)
    rows = ServerRows(db, get_tokens(app), get_oauth(app), settings.subdomain_host)
    auth_states = app.extensions.get("flaskhub.auth_states")
    app.extensions["flaskhub.servers"] = ServerManager(
        db,
        settings,
        users=get_users(app),
        rows=rows,
        routes=routes,
        auth_state_for=auth_states.for_spawn if auth_states and auth_states.enabled else None,
        heartbeats=get_heartbeats(app),
    )


def get_servers(app: Flask | None = None) -> ServerManager:
    """The ServerManager of the given or current app."""
    return (app or current_app).extensions["flaskhub.servers"]
