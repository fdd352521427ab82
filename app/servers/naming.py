"""How servers are named and counted: URL prefixes, OAuth client ids, access scopes,
and the state counts computed from the rows."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import Server, ServerState, User


def url_prefix(user_name: str, server_name: str = "") -> str:
    """The URL prefix of a server: /user/<escaped name>/[<server>/]."""
    prefix = f"/user/{quote(user_name, safe='@~')}/"
    if server_name:
        prefix += f"{quote(server_name, safe='@~')}/"
    return prefix


def client_id(user_name: str, server_name: str = "") -> str:
    """The OAuth client id of a server, as JupyterHub names it."""
    cid = f"jupyterhub-user-{quote(user_name, safe='@~')}"
    return f"{cid}-{quote(server_name, safe='@~')}" if server_name else cid


def access_scopes(user_name: str, server_name: str = "") -> list[str]:
    """The scopes that grant access to a server (any one of them suffices)."""
    return [f"access:servers!server={user_name}/{server_name}", f"access:servers!user={user_name}"]


def route_data(user_name: str, server_name: str = "") -> dict[str, Any]:
    """The data the hub stores with a server's route in CHP (`jupyterhub` marks it ours)."""
    return {"user": user_name, "server_name": server_name, "jupyterhub": True}


def state_counts(session: Session) -> dict[str, int]:
    """{active, pending, spawn_pending, stop_pending, ready}, computed from the rows now."""
    rows = session.execute(
        select(Server.state, func.count())
        .where(Server.state.in_([ServerState.SPAWNING, ServerState.STOPPING, ServerState.RUNNING]))
        .where((Server.state != ServerState.RUNNING) | Server.url.is_not(None))
        .group_by(Server.state)
    ).all()
    by_state = {state: n for state, n in rows}
    spawn = by_state.get(ServerState.SPAWNING, 0)
    stop = by_state.get(ServerState.STOPPING, 0)
    ready = by_state.get(ServerState.RUNNING, 0)
    return {
        "active": spawn + stop + ready,
        "pending": spawn + stop,
        "spawn_pending": spawn,
        "stop_pending": stop,
        "ready": ready,
    }


def find_server(session: Session, user_name: str, server_name: str) -> Server | None:
    """A user's server by name, in an open session."""
    return session.scalar(
        select(Server).join(Server.user).where(User.name == user_name, Server.name == server_name)
    )
