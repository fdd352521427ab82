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
from flask import redirect, request
from flask.typing import ResponseReturnValue

from app.config import current_settings
from app.errors import HubError, result_error
from app.models import Server, User
from app.outcomes import Outcome
from app.pages.visits import visit_error
from app.servers import Next, get_servers
from app.urls import pending_page_url, server_url_for, spawn_page_url

log = logging.getLogger(__name__)

MAX_REDIRECTS = 4
VERSION_CHECK_AT = 2


def handle(user: User, name: str, path: str) -> ResponseReturnValue:
    """The response for a logged-in user visiting /hub/user/<name>/<path>."""
    if user.name != name:
        # Never another user's server: to one's own.
        return redirect(server_url_for(user.name) + path + _query())
    server_name, path = _which_server(name, path)
    visit = get_servers().visit(name, server_name)
    if visit.next == Next.GO:
        assert visit.server is not None
        return _to_server(visit.server, name, server_name, path)
    if visit.next == Next.WAIT:
        return redirect(pending_page_url(name, server_name))
    if visit.next == Next.LAUNCH and visit.implicit_spawn:
        if current_settings().spawn_options:
            return redirect(spawn_page_url(name, server_name))  # choose first
        return _implicit_spawn(name, server_name, path)
    raise visit_error(visit)


def _which_server(name: str, path: str) -> tuple[str, str]:
    """(server name, path in it): a first step naming one of the user's named servers
    (when they are allowed) is that server; anything else is in the default one."""
    first, _, rest = path.partition("/")
    if first and current_settings().allow_named_servers:
        if get_servers().get_server(name, first) is not None:
            return first, rest
    return "", path


def _implicit_spawn(name: str, server_name: str, path: str) -> ResponseReturnValue:
    servers = get_servers()
    result = servers.start_server(name, server_name, {}, explicit=False)
    if result.outcome == Outcome.READY:
        return redirect(server_url_for(name, server_name) + path + _query())
    if result.outcome in (Outcome.PENDING, Outcome.ALREADY_PENDING):
        return redirect(pending_page_url(name, server_name))
    if result.outcome == Outcome.FAILED:
        raise visit_error(servers.visit(name, server_name, poll=False))
    raise result_error(result, home_link=True)


def _to_server(server: Server, name: str, server_name: str, path: str) -> ResponseReturnValue:
    redirects = _redirects()
    if redirects:
        log.warning("Redirect loop detected on %s (redirects=%s)", request.path, redirects)
        hub_version = current_settings().api_version
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
    return redirect(server_url_for(name, server_name) + path + _query(redirects=redirects + 1))


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
