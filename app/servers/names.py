"""How a server is named outside the hub: its URL prefix, OAuth client id, access
scopes and the data of its proxy route."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from app.outcomes import Invalid, shown
from app.spawners.base import SERVER_SEPARATOR

# With its user's name, part of file names and URLs: 64 bytes of UTF-8 at most.
SERVER_NAME_MAX_BYTES = 64
SERVER_NAME_RE = re.compile(r"[\w@+~-][\w.@+~-]*")


def check_server_name(server_name: str) -> None:
    """Raise Invalid unless the name can name a server (in URLs and file names)."""
    if (
        not SERVER_NAME_RE.fullmatch(server_name)
        or len(server_name.encode()) > SERVER_NAME_MAX_BYTES
    ):
        raise Invalid(
            f"Invalid server name {shown(server_name)}: use letters, digits and "
            f". _ - @ + ~, not starting with a dot, at most {SERVER_NAME_MAX_BYTES} bytes."
        )


def url_prefix(user_name: str, server_name: str = "") -> str:
    """The URL prefix of a server: /user/<escaped name>/[<server>/]."""
    prefix = f"/user/{quote(user_name, safe='@~')}/"
    if server_name:
        prefix += f"{quote(server_name, safe='@~')}/"
    return prefix


def client_id(user_name: str, server_name: str = "") -> str:
    """The OAuth client id of a server, as JupyterHub names it, but with `~` before a
    server's name: no username has one, so server x of alice is not user alice-x."""
    cid = f"jupyterhub-user-{quote(user_name, safe='@')}"
    return f"{cid}{SERVER_SEPARATOR}{quote(server_name, safe='@~')}" if server_name else cid


def access_scopes(user_name: str, server_name: str = "") -> list[str]:
    """The scopes that grant access to a server (any one of them suffices)."""
    return [f"access:servers!server={user_name}/{server_name}", f"access:servers!user={user_name}"]


def route_data(user_name: str, server_name: str = "") -> dict[str, Any]:
    """The data the hub stores with a server's route in CHP (`jupyterhub` marks it ours)."""
    return {"user": user_name, "server_name": server_name, "jupyterhub": True}
