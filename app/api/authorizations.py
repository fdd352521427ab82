"""/hub/api/authorizations/token[/<token>]: JupyterHub 1's token calls, as JupyterHub 6.1
still answers them.

GET …/token/<token> (deprecated in JupyterHub 2.0, still served, and still what
jhub-client's `jhubctl run` asks) is the model of a token's owner: any token may
look up any token, and sees of the owner what its own scopes show plus what
identifies the owner (name, admin, groups). POST …/token was removed: 404.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, jsonify

from app.api.common import include_stopped, require_identity
from app.api.serialize import user_model
from app.api.services import service_model
from app.api.visibility import visibility
from app.auth.state import get_auth_states
from app.errors import HubError
from app.identity import Identity
from app.roles import get_roles
from app.services.registry import get_services
from app.tokens import Service, get_tokens
from app.users import get_users

log = logging.getLogger(__name__)

bp = Blueprint("authorizations", __name__)

REMOVED_TOKEN_API = (
    "Deprecated endpoint /hub/api/authorizations/token is removed in JupyterHub 2.0."
    " Use /hub/api/users/:user/tokens instead."
)
# JupyterHub 6.1's words, so that a search for them finds the same advice.
DEPRECATED_LOOKUP = (
    "/authorizations/token/:token endpoint is deprecated in JupyterHub 2.0. Use /api/user"
)
# What a token's bearer may always see of the token's owner (JupyterHub's identify scopes:
# read:users:name and read:users:groups, read:services:name).
IDENTIFY_USER = ("kind", "name", "admin", "groups")
IDENTIFY_SERVICE = ("kind", "name", "admin")


@bp.post("/authorizations/token")
def removed_token_api() -> Response:
    raise HubError(404, REMOVED_TOKEN_API)


@bp.get("/authorizations/token/<path:token>")
def token_owner(token: str) -> Response:
    """The model of the token's owner (deprecated: GET /hub/api/user with the token)."""
    identity = require_identity()
    if identity.via_cookie:
        # JupyterHub's @token_authenticated: the login cookie alone is not enough.
        raise HubError(403, "Send a token: `Authorization: token <token>`.")
    log.warning(DEPRECATED_LOOKUP)
    found = get_tokens().lookup(token)
    if isinstance(found, Service):
        return jsonify(_service_seen(identity, found.name))
    if found is None or found.user is None:
        raise HubError(404, "No such token")
    return jsonify(_user_seen(identity, found.user.name))


def _user_seen(identity: Identity, name: str) -> dict[str, Any]:
    user = get_users().view(name)
    if user is None:
        raise HubError(404, "No such token")
    model = user_model(user, include_stopped=include_stopped(), state=True)
    seen = visibility(identity, [user]).trim_user(model)
    if identity.has_scope("admin:auth_state", user=name):
        seen["auth_state"] = get_auth_states().load(name)
    return {**{key: model[key] for key in IDENTIFY_USER}, **seen}


def _service_seen(identity: Identity, name: str) -> dict[str, Any]:
    registry = get_services()
    spec = registry.get(name)
    if spec is None:
        raise HubError(404, "No such token")
    model = service_model(registry, spec, get_roles().service_roles()[name])
    if identity.has_scope("read:services", service=name):
        return model
    shown = [*IDENTIFY_SERVICE]
    if identity.has_scope("read:roles:services", service=name):
        shown.append("roles")
    return {key: model[key] for key in shown}
