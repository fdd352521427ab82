"""How a server is named outside the hub: its URL prefix, OAuth client id, access
scopes and the data of its proxy route."""

from __future__ import annotations

import hashlib
import re
from typing import Any
from urllib.parse import quote, urlsplit

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


def server_label(user_name: str, server_name: str = "") -> str:
    """A server as log lines name it: "server of alice", "server 'gpu' of alice"."""
    return f"server {server_name!r} of {user_name}" if server_name else f"server of {user_name}"


def url_prefix(user_name: str, server_name: str = "") -> str:
    """The URL prefix of a server: /user/<escaped name>/[<server>/]."""
    prefix = f"/user/{quote(user_name, safe='@~')}/"
    if server_name:
        prefix += f"{quote(server_name, safe='@~')}/"
    return prefix


# A user's host label in per-user origins: a name that is a DNS label as it stands, else
# its DNS-safe part and a hash of the whole name. A label of that hashed form is never
# a name as it stands, so no user can take another's origin by their name.
HASHED_LABEL_RE = re.compile(r".*-h[0-9a-f]{16}")
PLAIN_LABEL_RE = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")
LABEL_MAX = 63


def host_label(user_name: str) -> str:
    """The DNS label of a user's origin (per-user origins)."""
    if (
        PLAIN_LABEL_RE.fullmatch(user_name)
        and len(user_name) <= LABEL_MAX
        and not HASHED_LABEL_RE.fullmatch(user_name)
        and not user_name.startswith("xn-")
    ):
        return user_name
    digest = hashlib.sha256(user_name.encode()).hexdigest()[:16]
    safe = "-".join(re.findall(r"[a-z0-9]+", user_name.lower()))[:40] or "u"
    return f"{safe}-h{digest}" if not safe.startswith("xn") else f"u{safe}-h{digest}"


def user_origin(subdomain_host: str, user_name: str) -> str:
    """The origin of a user's servers: '' on the hub's own (path mode), else
    <scheme>://<label>.<host>[:port]."""
    if not subdomain_host:
        return ""
    parts = urlsplit(subdomain_host)
    return f"{parts.scheme}://{host_label(user_name)}.{parts.netloc}"


def server_url(subdomain_host: str, user_name: str, server_name: str = "") -> str:
    """Where a person opens a server: its prefix, on its user's origin if they have one."""
    return user_origin(subdomain_host, user_name) + url_prefix(user_name, server_name)


def route_spec(subdomain_host: str, user_name: str, server_name: str = "") -> str:
    """The server's route in CHP: with per-user origins CHP routes by host (the host,
    without its port, as the path's first step)."""
    if not subdomain_host:
        return url_prefix(user_name, server_name)
    host = urlsplit(user_origin(subdomain_host, user_name)).hostname
    return f"/{host}{url_prefix(user_name, server_name)}"


def client_id(user_name: str, server_name: str = "") -> str:
    """The OAuth client id of a server, as JupyterHub names it, but with `~` before a
    server's name: no username has one, so server x of alice is not user alice-x."""
    cid = f"jupyterhub-user-{quote(user_name, safe='@')}"
    return f"{cid}{SERVER_SEPARATOR}{quote(server_name, safe='@~')}" if server_name else cid


def route_data(user_name: str, server_name: str = "") -> dict[str, Any]:
    """The data the hub stores with a server's route in CHP (`jupyterhub` marks it ours)."""
    return {"user": user_name, "server_name": server_name, "jupyterhub": True}
