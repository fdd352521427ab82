"""What every API view shares: who is calling, what they may do, the JSON body."""

from __future__ import annotations

import json
from typing import Any

from flask import Response, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from app.auth.session import current_identity
from app.errors import HubError
from app.identity import Identity
from app.models import User
from app.users import get_users


def require_identity() -> Identity:
    """The caller, or 403 for missing or bad credentials."""
    identity = current_identity()
    if identity.user is None and identity.service is None:
        raise HubError(403, "Missing or invalid credentials: send `Authorization: token <token>`.")
    return identity


def require_scope(
    scope: str,
    *,
    user: str | None = None,
    server: str | None = None,
    group: str | None = None,
    service: str | None = None,
) -> Identity:
    """The caller, if it holds scope for the target (for everything without one), else 403."""
    identity = require_identity()
    target = {"user": user, "server": server, "group": group, "service": service}
    named = {kind: value for kind, value in target.items() if value is not None}
    allowed = (
        identity.has_scope(scope, user, server, group=group, service=service)
        if named
        else identity.has_unfiltered_scope(scope)
    )
    if not allowed:
        on = " on " + ", ".join(f"{kind} {value}" for kind, value in named.items()) if named else ""
        raise HubError(
            403, f"Action is not authorized with current scopes; requires [{scope}]{on}."
        )
    return identity


def require_any_scope(
    scopes: list[str], *, user: str | None = None, group: str | None = None
) -> Identity:
    """The caller, if it holds any of scopes for the user or group, else 403 naming them."""
    identity = require_identity()
    if not any(identity.has_scope(s, user, group=group) for s in scopes):
        target = f"user {user}" if user is not None else f"group {group}"
        wanted = ", ".join(scopes)
        raise HubError(
            403,
            f"Action is not authorized with current scopes; requires any of [{wanted}] "
            f"on {target}.",
        )
    return identity


def user_or_404(name: str) -> User:
    """The user called name with their servers and groups, or 404."""
    user = get_users().get(name)
    if user is None:
        raise HubError(404, f"No such user: {name}")
    return user


def require_user(name: str) -> None:
    """404 unless a user is called name (for handlers that only need to know)."""
    mine = current_identity().user
    if (mine is None or mine.name != name) and not get_users().exists(name):
        raise HubError(404, f"No such user: {name}")


def include_stopped() -> bool:
    """?include_stopped_servers: stopped servers in user models too (absent, 0, false: no)."""
    value = request.args.get("include_stopped_servers")
    return value is not None and value.lower() not in ("0", "false")


def json_body(default: Any = None) -> Any:
    """The parsed JSON body (default when empty), or 400 saying what is wrong (413 when
    it is larger than max_body_size)."""
    data = request.get_data(cache=True)
    limit = request.max_content_length
    if request.content_length is None and limit is not None and len(data) >= limit:
        # Werkzeug cuts a streamed (chunked) body at the limit without an error.
        raise RequestEntityTooLarge()
    if not data.strip():
        return default
    try:
        return json.loads(data)
    except ValueError as e:
        raise HubError(400, f"Request body must be valid JSON: {e}") from None
    except RecursionError:
        raise HubError(400, "Request body must be valid JSON: it is nested too deeply") from None


def created_response(data: object) -> Response:
    """201 with the created resource's JSON model."""
    response = jsonify(data)
    response.status_code = 201
    return response
