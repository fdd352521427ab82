"""The pages of one's servers: home (the default server and named ones), spawn, spawn-pending."""

from __future__ import annotations

from urllib.parse import quote

from flask import Blueprint, redirect, render_template, request
from flask.typing import ResponseReturnValue

from app.auth.session import current_identity
from app.config import current_settings
from app.errors import HubError, result_error
from app.models import Server, User
from app.names import normalize_username
from app.outcomes import Outcome
from app.pages.login_required import require_login
from app.pages.visits import go_or_wait, visit_error
from app.servers import Next, get_servers
from app.servers.names import check_server_name
from app.spawn_options import chosen_options, option_fields
from app.urls import pending_page_url, server_url_for, spawn_page_url

bp = Blueprint("server_pages", __name__)

SPAWN_METHODS = ["GET", "POST"]


@bp.get("/hub/home")
def home() -> str:
    user = require_login()
    servers = get_servers()
    named = servers.servers_of(user.name)
    return render_template(
        "home.html",
        user=user,
        server=next((s for s in named if s.name == ""), None),
        prefix=server_url_for(user.name),
        proxy_up=servers.routes.ping(),
        named_servers=[s for s in named if s.name] if _named_allowed() else None,
        server_row=server_row,
    )


def server_row(server: Server) -> dict[str, str]:
    """What the home page shows of a named server: status, and its URLs."""
    name, owner = server.name, server.user.name
    status = {"spawning": "Starting", "stopping": "Stopping", "failed": "Failed"}.get(
        server.state, "Running" if server.ready else "Stopped"
    )
    return {
        "status": status,
        "url": server_url_for(owner, name),
        "spawn_url": spawn_page_url(owner, name),
        "pending_url": pending_page_url(owner, name),
        "api_url": f"/hub/api/users/{quote(owner, safe='@~')}/servers/{quote(name, safe='@~')}",
    }


@bp.route("/hub/spawn", methods=SPAWN_METHODS, defaults={"name": "", "server_name": ""})
@bp.route("/hub/spawn/<name>", methods=SPAWN_METHODS, defaults={"server_name": ""})
@bp.route("/hub/spawn/<name>/<server_name>", methods=SPAWN_METHODS)
def spawn(name: str, server_name: str) -> ResponseReturnValue:
    """An explicit request to start (again, after a failure); then to the server or the
    pending page. Another user's server: with the `servers` scope on it (admins)."""
    user = require_login()
    name = normalize_username(name) if name else user.name
    _check_may_start(user, name, server_name)
    fields = option_fields(current_settings().spawn_options)
    values = request.form if request.method == "POST" else request.args
    if fields and request.method == "GET" and not any(f.name in values for f in fields):
        # The form; choices in the query (?<name>=) skip it, as JupyterHub's query options.
        return render_template("spawn.html", fields=fields, name=name, server_name=server_name)
    servers = get_servers()
    result = servers.start_server(name, server_name, chosen_options(fields, values))
    if result.outcome in (Outcome.THROTTLED, Outcome.TOO_MANY_USERS, Outcome.PENDING_STOP):
        raise result_error(result, home_link=True)
    return go_or_wait(servers.visit_after(result, name, server_name))


def _check_may_start(user: User, name: str, server_name: str) -> None:
    if server_name:
        if not _named_allowed():
            raise HubError(404, "Named servers are not enabled on this hub.", home_link=True)
        check_server_name(server_name)
    if name != user.name and not current_identity().has_scope(
        "start:servers", server=f"{name}/{server_name}"
    ):
        raise HubError(403, f"You may not start servers of {name}.", home_link=True)


@bp.get("/hub/spawn-pending/<name>", defaults={"server_name": ""})
@bp.get("/hub/spawn-pending/<name>/<server_name>")
def spawn_pending(name: str, server_name: str) -> ResponseReturnValue:
    user = require_login()
    name = normalize_username(name)
    if user.name != name and not user.admin:
        return redirect(pending_page_url(user.name, server_name))
    visit = get_servers().visit(name, server_name)
    if visit.next == Next.GO:
        return redirect(visit.url)
    if visit.next == Next.LAUNCH:
        return redirect("/hub/home")
    if visit.next != Next.WAIT:
        raise visit_error(visit)
    api = f"/hub/api/users/{name}/servers/{server_name}" if server_name else ""
    return render_template(
        "spawn_pending.html",
        name=name,
        server_name=server_name,
        server=visit.server,
        progress_url=f"{api}/progress" if api else f"/hub/api/users/{name}/server/progress",
        # An admin watching another's default server relaunches that one, not their own.
        spawn_url=spawn_page_url(name, server_name)
        if name == user.name or server_name
        else f"/hub/spawn/{quote(name, safe='@~')}",
    )


def _named_allowed() -> bool:
    return current_settings().allow_named_servers
