"""Named servers: /hub/api/users/<name>/servers/<server_name>[/progress].

Off unless `allow_named_servers`; `named_server_limit_per_user` (0 = none)
counts every named server a user has, running or not, until it is removed
with DELETE {"remove": true}. The empty name (``…/servers/``) is the default
server, as in JupyterHub.
"""

from __future__ import annotations

import gevent
from flask import Blueprint, Response

from app.api.common import json_body, require_scope, require_user, user_or_404
from app.api.progress import progress_response
from app.config import current_settings
from app.errors import HubError, result_response
from app.outcomes import Outcome
from app.servers import get_servers
from app.servers.names import check_server_name

bp = Blueprint("named_servers", __name__)


@bp.post("/users/<name>/servers/", defaults={"server_name": ""})
@bp.post("/users/<name>/servers/<server_name>")
def start_named_server(name: str, server_name: str) -> Response:
    """Start a server; body: user options. 201 ready, 202 pending, as for the default one."""
    require_scope("start:servers", server=f"{name}/{server_name}")
    require_user(name)
    if server_name:
        _check_enabled()
        check_server_name(server_name)
    options = json_body({})
    if not isinstance(options, dict):
        raise HubError(400, "Server options must be a JSON object")
    return result_response(get_servers().start_server(name, server_name, options))


@bp.delete("/users/<name>/servers/", defaults={"server_name": ""})
@bp.delete("/users/<name>/servers/<server_name>")
def stop_named_server(name: str, server_name: str) -> Response:
    """Stop a server (204, or 202 while stopping); {"remove": true} also deletes it."""
    require_scope("delete:servers", server=f"{name}/{server_name}")
    user = user_or_404(name)
    body = json_body({})
    if not isinstance(body, dict) or not isinstance(body.get("remove", False), bool):
        raise HubError(400, 'Send nothing, or {"remove": true} to delete the server too.')
    remove = body.get("remove", False)
    if server_name:
        _check_enabled()
        if user.server(server_name) is None:
            raise HubError(404, f"{name} has no server named '{server_name}'")
    elif remove:
        raise HubError(400, "Cannot delete the default server")
    servers = get_servers()
    result = servers.stop_server(name, server_name)
    if remove and result.outcome == Outcome.STOPPED:
        servers.remove_server(name, server_name)
    elif remove:
        gevent.spawn(servers.remove_when_stopped, name, server_name)
    return result_response(result)


@bp.get("/users/<name>/servers/<server_name>/progress")
def named_server_progress(name: str, server_name: str) -> Response:
    """Server-sent events of a named server's spawn (as …/server/progress)."""
    require_scope("read:servers", server=f"{name}/{server_name}")
    require_user(name)
    if get_servers().get_server(name, server_name) is None:
        raise HubError(404, f"{name} has no server named '{server_name}'")
    return progress_response(get_servers(), name, server_name)


def _check_enabled() -> None:
    if not current_settings().allow_named_servers:
        raise HubError(400, "Named servers are not enabled.")
