"""A user's system account: POST /hub/api/users/<name>/system-account (admins only)."""

from __future__ import annotations

from dataclasses import asdict

from flask import Blueprint, Response, jsonify

from app.api.common import json_body, require_identity
from app.errors import HubError
from app.system_accounts import get_system_accounts
from app.users import normalize_username

bp = Blueprint("system_accounts", __name__)


@bp.post("/users/<name>/system-account")
def bind(name: str) -> Response:
    """{"account": ACCOUNT}: the user's servers run as this kept account, with its files."""
    identity = require_identity()
    # Admins only, not admin:users: it decides which machine account runs a user's code.
    if not identity.admin:
        raise HubError(403, "Only admins can bind system accounts to users.")
    body = json_body({})
    if (
        not isinstance(body, dict)
        or set(body) != {"account"}
        or not isinstance(body["account"], str)
    ):
        raise HubError(400, 'Send {"account": "<name of a system account>"}.')
    by = f"admin {identity.name}" if identity.user is not None else f"service {identity.name}"
    binding = get_system_accounts().bind(normalize_username(name), body["account"], by=by)
    return jsonify(asdict(binding))
