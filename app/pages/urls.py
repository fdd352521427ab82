"""Where the pages send a person: a server's URL, on its user's origin if they have one."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import redirect, request
from werkzeug.wrappers import Response

from app.config import current_settings
from app.servers.names import server_url


def server_url_for(user_name: str, server_name: str = "") -> str:
    """The URL of a server as a browser opens it (absolute with per-user origins)."""
    return server_url(current_settings().subdomain_host, user_name, server_name)


def to_hub_origin() -> Response | None:
    """A request on a user's origin that reached the hub (no route there: a stopped
    server, or /hub/ itself) goes to the hub's own origin: the hub never serves a page,
    nor sets a cookie, on an origin whose every other path a user's server controls."""
    hub_origin = current_settings().subdomain_host.rstrip("/")
    if not hub_origin:
        return None
    hub_host = urlsplit(hub_origin).hostname or ""
    if not request.host.partition(":")[0].lower().endswith("." + hub_host):
        return None  # the hub's own host, or its port reached directly (servers' API calls)
    return redirect(hub_origin + request.full_path.rstrip("?"), 307)
