"""/hub/user/<name>/<path>: to the running server, with redirect-loop detection.

The proxy sends /user/<name>/… to the hub only when it has no route for it;
the hub then sends the browser back with a `redirects` counter. A counter
that keeps growing is a loop: we back off, repair the route if the proxy lost
it, and after a few rounds explain instead of looping forever.
"""

from __future__ import annotations

import logging
from urllib.parse import urlencode

import gevent
from flask import current_app, redirect, request
from flask.typing import ResponseReturnValue

from app.errors import HubError
from app.models import Server, ServerState, User
from app.servers import get_servers, url_prefix

log = logging.getLogger(__name__)

MAX_REDIRECTS = 4
VERSION_CHECK_AT = 2
RESTART_HINT = "You can try restarting your server from the home page."


def handle(user: User, name: str, path: str) -> ResponseReturnValue:
    """The response for a logged-in user visiting /hub/user/<name>/<path>."""
    if user.name != name:
        # Never another user's server: to one's own.
        return redirect(url_prefix(user.name) + path + _query())
    servers = get_servers()
    server = servers.get_server(name)
    if server is not None and server.state == ServerState.RUNNING:
        if not servers.poll_server(server):
            server = servers.get_server(name)
    state = ServerState(server.state) if server is not None else ServerState.STOPPED
    if state == ServerState.RUNNING:
        assert server is not None
        return _to_server(server, name, path)
    if state == ServerState.SPAWNING:
        return redirect(f"/hub/spawn-pending/{name}")
    if state == ServerState.STOPPING:
        raise HubError(503, f"{name}'s server is stopping. Try again in a moment.", home_link=True)
    if state == ServerState.FAILED:
        assert server is not None
        raise HubError(
            server.failure_status or 500,
            f"{server.failure_message or 'Spawn failed.'} {RESTART_HINT}",
            title="Spawn failed",
            home_link=True,
        )
    reason = server.stop_reason if server is not None else None
    if reason or not current_app.config["FLASKHUB"].implicit_spawn:
        raise HubError(
            424,
            reason or f"{name}'s server is not running.",
            title="Server not running",
            launch=True,
        )
    return _implicit_spawn(name, path)


def _implicit_spawn(name: str, path: str) -> ResponseReturnValue:
    result = get_servers().start_server(name)
    if result.ready:
        return redirect(url_prefix(name) + path + _query())
    if result.pending:
        return redirect(f"/hub/spawn-pending/{name}")
    raise HubError(
        result.code, f"{result.message} {RESTART_HINT}", headers=result.headers, home_link=True
    )


def _to_server(server: Server, name: str, path: str) -> ResponseReturnValue:
    redirects = _redirects()
    if redirects:
        log.warning("Redirect loop detected on %s (redirects=%s)", request.path, redirects)
        hub_version = current_app.config["FLASKHUB"].api_version
        if redirects >= VERSION_CHECK_AT and _major(server.version) != _major(hub_version):
            raise HubError(
                500,
                f"Redirect loop detected. Notebook has jupyterhub version "
                f"{server.version or 'unknown'}, but the Hub expects {hub_version}. Try "
                f"installing jupyterhub=={hub_version} in the user environment if you "
                "continue to have problems.",
            )
        if redirects >= MAX_REDIRECTS:
            raise HubError(500, "Redirect loop detected.")
        get_servers().ensure_route(server)
        gevent.sleep(min(2**redirects, 10))
    return redirect(url_prefix(name) + path + _query(redirects=redirects + 1))


def _redirects() -> int:
    try:
        return max(int(request.args.get("redirects", "0")), 0)
    except ValueError:
        return 0


def _query(**extra: int) -> str:
    args = [(k, v) for k, v in request.args.items(multi=True) if k != "redirects"]
    args += [(k, str(v)) for k, v in extra.items()]
    return "?" + urlencode(args) if args else ""


def _major(version: str | None) -> str | None:
    if not version or version == "unknown":
        return None
    return version.split(".", 1)[0]
