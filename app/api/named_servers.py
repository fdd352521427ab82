"""Named servers: /hub/api/users/<name>/servers/<server_name>[/progress].

Off unless `allow_named_servers`; `named_server_limit_per_user` (0 = none)
counts every named server a user has, running or not, until it is removed
with DELETE {"remove": true}. The empty name (``…/servers/``) is the default
server, as in JupyterHub. JupyterHub 6: GET reads one server's model, PUT creates a
named server without starting it, PATCH renames a stopped one or sets its
display_name or user_options.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gevent
from flask import Blueprint, Response, jsonify

from app.api.common import created_response, json_body, require_scope, require_user, user_or_404
from app.api.progress import progress_response
from app.api.serialize import server_model
from app.config import current_settings
from app.errors import HubError, result_response
from app.identity import Identity
from app.outcomes import Outcome
from app.servers import get_servers
from app.servers.edits import ServerEdit
from app.servers.names import check_server_name

bp = Blueprint("named_servers", __name__)


@dataclass(frozen=True)
class ServerRequest:
    """The body of a POST or PUT: JupyterHub 6's {"display_name", "user_options"}, or
    (before 6, and still) the user options themselves. None: not given."""

    display_name: str | None
    user_options: dict[str, Any] | None


def server_request() -> ServerRequest:
    """The request's ServerRequest, checked (400 for fields of the wrong type)."""
    body = json_body(None)
    if not body:
        return ServerRequest(None, None)
    if not isinstance(body, dict):
        raise HubError(400, "Body must be a JSON object")
    if "display_name" in body and not isinstance(body["display_name"], str):
        raise HubError(400, "display_name must be a string")
    options = body.get("user_options")
    if options is not None and not isinstance(options, dict):
        raise HubError(400, "user_options must be an object or null")
    if "display_name" in body or "user_options" in body:
        return ServerRequest(body.get("display_name"), options)
    return ServerRequest(None, body)


def start_with(name: str, server_name: str, wanted: ServerRequest) -> Response:
    """Start a server; options not given are those of its last start (JupyterHub 6),
    which the claim reads with the server."""
    servers = get_servers()
    if wanted.display_name:
        current = servers.get_server(name, server_name)
        if current is not None and not current.active:
            servers.edits.edit(name, server_name, ServerEdit(display_name=wanted.display_name))
        elif current is None and server_name:
            servers.edits.create(name, server_name, wanted.display_name, {})
    return result_response(servers.start_server(name, server_name, wanted.user_options))


@bp.post("/users/<name>/servers/", defaults={"server_name": ""})
@bp.post("/users/<name>/servers/<server_name>")
def start_named_server(name: str, server_name: str) -> Response:
    """Start a server; body: user options. 201 ready, 202 pending, as for the default one."""
    require_scope("start:servers", server=f"{name}/{server_name}")
    require_user(name)
    if server_name:
        _check_enabled()
        check_server_name(server_name)
    return start_with(name, server_name, server_request())


@bp.get("/users/<name>/servers/", defaults={"server_name": ""})
@bp.get("/users/<name>/servers/<server_name>")
def get_named_server(name: str, server_name: str) -> Response:
    """One server's model, running or not (JupyterHub 6)."""
    identity = require_scope("read:servers", server=f"{name}/{server_name}")
    require_user(name)
    return jsonify(_model(identity, name, server_name))


@bp.put("/users/<name>/servers/", defaults={"server_name": ""})
@bp.put("/users/<name>/servers/<server_name>")
def create_named_server(name: str, server_name: str) -> Response:
    """Create a named server without starting it (JupyterHub 6): 201, 409 if it exists."""
    identity = require_scope("start:servers", server=f"{name}/{server_name}")
    require_user(name)
    wanted = server_request()
    options = wanted.user_options or {}
    get_servers().edits.create(name, server_name, wanted.display_name or "", options)
    return created_response(_model(identity, name, server_name))


@bp.patch("/users/<name>/servers/", defaults={"server_name": ""})
@bp.patch("/users/<name>/servers/<server_name>")
def edit_named_server(name: str, server_name: str) -> Response:
    """Rename a stopped server, or set its display_name or user_options (JupyterHub 6)."""
    identity = require_scope("start:servers", server=f"{name}/{server_name}")
    require_user(name)
    edit = _server_edit(json_body({}))
    get_servers().edits.edit(name, server_name, edit)
    return jsonify(_model(identity, name, server_name if edit.name is None else edit.name))


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


# What PATCH may change, and the JSON type of each.
EDITABLE: dict[str, type] = {"name": str, "display_name": str, "user_options": dict}


def _server_edit(body: object) -> ServerEdit:
    """The body of a PATCH, checked: at least one known field, each of its type."""
    if not isinstance(body, dict) or not body:
        raise HubError(
            400, "Must specify at least one field to modify: name, display_name or user_options."
        )
    unknown = sorted(set(body) - set(EDITABLE))
    if unknown:
        raise HubError(
            400, f"Unexpected fields: {', '.join(unknown)}; supported: {', '.join(EDITABLE)}"
        )
    for key, kind in EDITABLE.items():
        if key in body and not isinstance(body[key], kind):
            raise HubError(400, f"{key} must be {'an object' if kind is dict else 'a string'}")
    return ServerEdit(**body)


def _model(identity: Identity, name: str, server_name: str) -> dict[str, Any]:
    """The server's model as the caller may see it (state only with admin:server_state)."""
    server = get_servers().get_server(name, server_name)
    if server is None:
        raise HubError(404, f"{name} has no server named '{server_name}'")
    model = server_model(server, state=True)
    if not identity.has_scope("admin:server_state", server=f"{name}/{server_name}"):
        model.pop("state", None)
    return model


def _check_enabled() -> None:
    if not current_settings().allow_named_servers:
        raise HubError(400, "Named servers are not enabled.")
