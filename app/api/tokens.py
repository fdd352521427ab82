"""A user's API tokens: /hub/api/users/<name>/tokens[/<token_id>] (JupyterHub's shapes).

A token's id is ``a<row id>``; the token itself is shown once, in the answer
to the POST that created it. A token carries at most its owner's rights; a
request for scopes the owner does not hold is refused (400), and so is one
for scopes the requesting credential does not hold itself (403), so a narrow
token cannot mint a broader one.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, jsonify

from app.api.common import created_response, json_body, require_scope, user_or_404
from app.api.serialize import isoformat
from app.errors import HubError
from app.grants import get_grants
from app.identity import Identity
from app.models import APIToken, User
from app.outcomes import shown
from app.roles import get_roles
from app.scopes import ScopeError, check_scopes, expand_scopes
from app.tokens import get_tokens

log = logging.getLogger(__name__)

DEFAULT_NOTE = "Requested via api"
# A hundred years: longer would run past what a datetime can hold.
MAX_EXPIRES_IN = 100 * 365 * 24 * 3600
bp = Blueprint("tokens", __name__)


@bp.get("/users/<name>/tokens")
def list_tokens(name: str) -> Response:
    require_scope("read:tokens", user=name)
    user = user_or_404(name)
    tokens = sorted(get_tokens().list(user.id), key=lambda t: t.last_activity or t.created)
    return jsonify({"api_tokens": token_models(user, tokens)})


@bp.post("/users/<name>/tokens")
def create_token(name: str) -> Response:
    """Create a token: {"note", "expires_in", "scopes" or "roles"}, all optional."""
    identity = require_scope("tokens", user=name)
    user = user_or_404(name)
    body = json_body({}) or {}
    if not isinstance(body, dict):
        raise HubError(400, "Body must be a JSON dict or empty")
    requested = _requested_scopes(body)
    expires_in = _expires_in(body.get("expires_in"))
    note = body.get("note") or _default_note(identity, user)
    if not isinstance(note, str):
        raise HubError(400, f"token note must be a string, not {shown(note)}")
    _check_scopes_held(identity, user, requested)
    token, row = get_tokens().create(user.id, note=note, expires_in=expires_in, scopes=requested)
    log.info("%s created API token a%s for %s (%s)", identity.name, row.id, user.name, note)
    return created_response({**token_models(user, [row])[0], "token": token})


@bp.get("/users/<name>/tokens/<token_id>")
def get_token(name: str, token_id: str) -> Response:
    require_scope("read:tokens", user=name)
    user = user_or_404(name)
    return jsonify(token_models(user, [get_tokens().get(user.id, token_id)])[0])


@bp.delete("/users/<name>/tokens/<token_id>")
def delete_token(name: str, token_id: str) -> Response:
    """Revoke a token; an OAuth token takes every token of its client with it (JupyterHub's)."""
    require_scope("tokens", user=name)
    user = user_or_404(name)
    get_tokens().revoke(user.id, token_id)
    log.info("Deleted token %s of %s", token_id, user.name)
    return Response(status=204)


def token_models(owner: User, tokens: list[APIToken]) -> list[dict[str, Any]]:
    """JupyterHub's token model for each of a user's tokens."""
    clients = get_tokens().client_descriptions(t.client_id for t in tokens if t.client_id)
    return [
        {
            "id": f"a{token.id}",
            "kind": "api_token",
            "user": owner.name,
            "roles": [],
            # What the token can do now: its scopes within its owner's.
            "scopes": Identity(user=owner, token=token, grants=get_grants()).shown_scopes,
            "note": token.note,
            "created": isoformat(token.created),
            "expires_at": isoformat(token.expires_at),
            "last_activity": isoformat(token.last_activity),
            "session_id": None,
            "oauth_client": clients.get(token.client_id or "", "JupyterHub"),
        }
        for token in tokens
    ]


def _requested_scopes(body: dict[str, Any]) -> list[str]:
    """The scopes asked for (roles resolved to theirs): ["inherit"] when neither key is
    given, ["identify"] when one is given empty (JupyterHub 6.1's), 400 for both."""
    given = {key: body[key] for key in ("scopes", "roles") if body.get(key) is not None}
    if len(given) > 1:
        raise HubError(400, "Can only assign one of scopes or roles when creating tokens.")
    if not given:
        return ["inherit"]
    key, value = given.popitem()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise HubError(400, f"token {key} must be null or a list of strings, not {shown(value)}")
    requested = get_roles().scopes_of_roles(value) if key == "roles" else value
    try:
        check_scopes(requested)
    except ScopeError as e:
        raise HubError(400, str(e)) from None
    # An empty list asks for nothing beyond identifying the owner, never for "inherit".
    return list(dict.fromkeys(requested)) or ["identify"]


def _expires_in(value: object) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise HubError(
            400, f"token expires_in must be null or a non-negative integer, not {shown(value)}"
        )
    if value > MAX_EXPIRES_IN:
        raise HubError(400, f"token expires_in: {value} must not exceed {MAX_EXPIRES_IN}")
    return value or None


def _default_note(identity: Identity, user: User) -> str:
    if identity.user is not None and identity.user.name == user.name:
        return DEFAULT_NOTE
    kind = "user" if identity.user is not None else "service"
    return f"{DEFAULT_NOTE} by {kind} {identity.name}"


def _check_scopes_held(identity: Identity, owner: User, requested: list[str]) -> None:
    """400 if the owner does not hold a requested scope, 403 if the requester does not."""
    owner_identity = Identity(user=owner, grants=identity.grants)
    expanded = {
        scope: owner_identity.owner_scopes
        if scope == "inherit"
        else expand_scopes([scope], user=owner.name)
        for scope in requested
    }
    not_owner = [s for s, wanted in expanded.items() if owner_identity.missing_scopes(wanted)]
    if not_owner:
        raise HubError(
            400,
            f"Not assigning requested scopes {', '.join(not_owner)} not held by user {owner.name}",
        )
    not_requester = [s for s, wanted in expanded.items() if identity.missing_scopes(wanted)]
    if not_requester:
        raise HubError(
            403,
            f"{identity.name} may not grant scopes it does not hold: {', '.join(not_requester)}",
        )
