"""The hub's URLs in one place: a server's URL (on its user's origin if they have one), the
pages' paths, and the one check of a `next` URL."""

from __future__ import annotations

from urllib.parse import quote, urlsplit

from flask import redirect, request
from werkzeug.wrappers import Response

from app.config import current_settings
from app.errors import HubError
from app.servers.names import server_url

C0_AND_SPACE = "".join(map(chr, range(33)))


def safe_next(target: str | None) -> str:
    """Only a path on this hub, judged as a browser will read it: never another host;
    "" for none (the user's landing_url then)."""
    if not target:
        return ""
    if "\r" in target or "\n" in target:
        raise HubError(400, "The next URL must not contain a line break.")
    # Browsers drop tabs and surrounding control characters and read \ as /.
    path = target.replace("\t", "").strip(C0_AND_SPACE).replace("\\", "/")
    parts = urlsplit(path)
    if path.startswith("/") and not path.startswith("//") and not parts.scheme + parts.netloc:
        return path
    return ""


def _path(user_name: str, server_name: str) -> str:
    path = quote(user_name, safe="@~")
    return f"{path}/{quote(server_name, safe='@~')}" if server_name else path


def pending_page_url(name: str, server_name: str = "") -> str:
    """The spawn-pending page of a server."""
    return f"/hub/spawn-pending/{_path(name, server_name)}"


def spawn_page_url(name: str, server_name: str = "") -> str:
    """Where to (re)start a server: /hub/spawn for one's default server."""
    return f"/hub/spawn/{_path(name, server_name)}" if server_name else "/hub/spawn"


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
