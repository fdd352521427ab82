"""The REST API under /hub/api: JupyterHub's paths, shapes and status codes."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request

from app.auth import Identity, csrf_ok, current_identity
from app.errors import HubError

bp = Blueprint("api", __name__, url_prefix="/hub/api")


@bp.before_request
def _checks() -> Response | None:
    if request.method == "OPTIONS":
        # CORS preflight and plain OPTIONS: 200, empty, with the default headers.
        return Response("", 200)
    identity = current_identity()
    if identity.via_cookie and not csrf_ok():
        raise HubError(403, "XSRF cookie does not match POST argument")
    return None


def require_identity() -> Identity:
    """The caller, or 403 for missing or bad credentials."""
    identity = current_identity()
    if identity.user is None and identity.service is None:
        raise HubError(403, "Missing or invalid credentials: send `Authorization: token <token>`.")
    return identity


def require_admin() -> Identity:
    identity = require_identity()
    if not identity.admin:
        raise HubError(403, f"{identity.name} is not an admin: this needs admin rights.")
    return identity


def require_manage(user_name: str) -> Identity:
    """The caller may act for user_name (admin, or that user with full rights)."""
    identity = require_identity()
    if not identity.can_manage(user_name):
        raise HubError(403, f"{identity.name} may not act for user {user_name}.")
    return identity


def json_body(default: Any = None) -> Any:
    """The parsed JSON body (default when empty), or 400 saying what is wrong."""
    data = request.get_data(cache=True)
    if not data.strip():
        return default
    try:
        import json

        return json.loads(data)
    except ValueError as e:
        raise HubError(400, f"Request body must be valid JSON: {e}") from None


from app.api import hub, oauth, users  # noqa: E402,F401  (routes register on bp)
