"""Sharing (JupyterHub 5): /shares, /share-codes, /users/<name>/shared, /groups/<name>/shared.

Lists always answer JupyterHub's pagination envelope, as JupyterHub's do. A
server's share routes end in its name, empty for the default server
(`/shares/alice/`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Response, jsonify, request

from app.api.common import json_body, require_scope, user_or_404
from app.api.pagination import page_args
from app.api.serialize import isoformat, server_model
from app.config import current_settings
from app.errors import HubError
from app.groups import get_groups
from app.identity import Identity
from app.models import Server, Share, ShareCode
from app.outcomes import NotFound
from app.servers import get_servers
from app.shares import (
    CODE_LIFETIME_RANGE,
    DEFAULT_CODE_LIFETIME,
    apply_filter,
    filtered,
    get_shares,
)
from app.users import get_users, normalize_username

bp = Blueprint("shares", __name__)

# -- models -------------------------------------------------------------------------


def shared_server_model(server: Server) -> dict[str, Any]:
    """JupyterHub's truncated server model of shares: user, name, url, full_url, ready."""
    full = server_model(server)
    return {"user": {"name": server.user.name}, **{k: full[k] for k in SHARED_SERVER_FIELDS}}


SHARED_SERVER_FIELDS = ("name", "url", "full_url", "ready")


def share_model(share: Share) -> dict[str, Any]:
    return {
        "server": shared_server_model(share.server),
        "scopes": filtered(share.scopes, share.server),
        "user": {"name": share.user.name} if share.user else None,
        "group": {"name": share.group.name} if share.group else None,
        "kind": "group" if share.group else "user",
        "created_at": isoformat(share.created_at),
    }


def share_code_model(row: ShareCode, code: str | None = None) -> dict[str, Any]:
    model: dict[str, Any] = {
        "server": shared_server_model(row.server),
        "scopes": filtered(row.scopes, row.server),
        "id": f"sc_{row.id}",
        "created_at": isoformat(row.created_at),
        "expires_at": isoformat(row.expires_at),
        "exchange_count": row.exchange_count,
        "last_exchanged_at": isoformat(row.last_exchanged_at),
    }
    if code is not None:
        model["code"] = code
        model["accept_url"] = "/hub/accept-share?" + urlencode({"code": code})
        model["full_accept_url"] = current_settings().public_url + model["accept_url"]
    return model


def envelope(items: list[Any], offset: int, limit: int, total: int) -> Response:
    """JupyterHub's pagination envelope (always, for shares)."""
    next_page = None
    if offset + limit < total:
        query = {**request.args.to_dict(), "offset": offset + limit, "limit": limit}
        next_page = {
            "offset": offset + limit,
            "limit": limit,
            "url": f"{request.base_url}?{urlencode(query)}",
        }
    pagination = {"offset": offset, "limit": limit, "total": total, "next": next_page}
    return jsonify({"items": items, "_pagination": pagination})


def _server_or_404(owner: str, server_name: str) -> Server:
    server = get_servers().get_server(owner, server_name)
    if server is None:
        raise HubError(404, f"No such server: {owner}/{server_name}")
    return server


def _scopes_of(body: dict[str, Any], owner: str, server_name: str) -> list[str] | None:
    """The body's scopes with the server's filter; None if it names none."""
    scopes = body.get("scopes")
    if scopes is None or scopes == []:
        return None
    if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
        raise HubError(400, "scopes must be a list of strings")
    return apply_filter(scopes, owner, server_name)


def _granted(body: dict[str, Any], owner: str, server_name: str) -> list[str]:
    """The scopes to grant: the body's, by default access to the server."""
    default = [f"access:servers!server={owner}/{server_name}"]
    return _scopes_of(body, owner, server_name) or default


def _body(allowed: set[str]) -> dict[str, Any]:
    body = json_body({})
    if not isinstance(body, dict):
        raise HubError(400, "Body must be a JSON object")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise HubError(400, f"Unknown field(s): {', '.join(unknown)}")
    return body


# -- /shares ------------------------------------------------------------------------


@bp.get("/shares/<name>")
def owner_shares(name: str) -> Response:
    """Every share of a user's servers."""
    require_scope("read:shares", user=name)
    owner = user_or_404(name)
    offset, limit = page_args()
    rows, total = get_shares().of_owner(owner.id, None, offset, limit)
    return envelope([share_model(r) for r in rows], offset, limit, total)


@bp.route("/shares/<name>/", methods=["GET"])
@bp.route("/shares/<name>/<server_name>", methods=["GET"])
def server_shares(name: str, server_name: str = "") -> Response:
    """The shares of one server."""
    require_scope("read:shares", user=name, server=f"{name}/{server_name}")
    server = _server_or_404(name, server_name)
    offset, limit = page_args()
    rows, total = get_shares().of_owner(server.user_id, server.id, offset, limit)
    return envelope([share_model(r) for r in rows], offset, limit, total)


@bp.route("/shares/<name>/", methods=["POST"])
@bp.route("/shares/<name>/<server_name>", methods=["POST"])
def grant_share(name: str, server_name: str = "") -> Response:
    """Share a server with a user or a group (scopes added to any given before)."""
    identity = require_scope("shares", user=name, server=f"{name}/{server_name}")
    body = _body({"scopes", "user", "group"})
    scopes = _granted(body, name, server_name)
    server = _server_or_404(name, server_name)
    for scope in scopes:
        base, _, _filter = scope.partition("!")
        if not identity.has_scope(base, name, f"{name}/{server_name}"):
            raise HubError(403, f"Do not have permission to grant share with scope {scope}")
    user_id, group_id = _recipient(body, identity)
    share = get_shares().grant(server, scopes, user_id=user_id, group_id=group_id)
    return jsonify(share_model(share))


def _named(body: dict[str, Any]) -> tuple[str, str]:
    """("user" or "group", name) from a body with exactly one of them; 400 otherwise."""
    user, group = body.get("user"), body.get("group")
    if bool(user) == bool(group) or not isinstance(user or group, str):
        raise HubError(400, "Specify exactly one of `user` or `group` (a name)")
    if user:
        return "user", normalize_username(user)
    return "group", group  # type: ignore[return-value]


def _recipient(body: dict[str, Any], identity: Identity) -> tuple[int | None, int | None]:
    """(user id, group id) of the body's `user` or `group`; 400 if unknown, 403 if the
    caller may not read its name (JupyterHub's)."""
    kind, name = _named(body)
    if not identity.has_scope(f"read:{kind}s:name", **{kind: name}):
        raise HubError(403, f"Need scope 'read:{kind}s:name' to share with {kind}s by name")
    user_id, group_id = _ids(kind, name)
    if user_id is None and group_id is None:
        raise HubError(400, f"No such {kind}: {name}")
    return user_id, group_id


def _ids(kind: str, name: str) -> tuple[int | None, int | None]:
    """(user id, None) or (None, group id) of a name; (None, None) if there is none."""
    if kind == "user":
        user = get_users().get(name)
        return (user.id if user is not None else None), None
    try:
        return None, get_groups().get(name).id
    except NotFound:
        return None, None


@bp.route("/shares/<name>/", methods=["PATCH"])
@bp.route("/shares/<name>/<server_name>", methods=["PATCH"])
def revoke_share(name: str, server_name: str = "") -> Response:
    """Take scopes (all, without `scopes`) back from a user or group; {} if nothing is left."""
    require_scope("shares", user=name, server=f"{name}/{server_name}")
    body = _body({"scopes", "user", "group"})
    server = _server_or_404(name, server_name)
    kind, who = _named(body)
    scopes = _scopes_of(body, name, server_name)
    user_id, group_id = _ids(kind, who)
    if user_id is None and group_id is None:
        return jsonify({})  # no such user or group: nothing to revoke, as JupyterHub
    share = get_shares().revoke(server, scopes, user_id=user_id, group_id=group_id)
    return jsonify(share_model(share) if share is not None else {})


@bp.route("/shares/<name>/", methods=["DELETE"])
@bp.route("/shares/<name>/<server_name>", methods=["DELETE"])
def delete_shares(name: str, server_name: str = "") -> Response:
    """Revoke every share of a server."""
    require_scope("shares", user=name, server=f"{name}/{server_name}")
    get_shares().delete_all(_server_or_404(name, server_name).id)
    return Response(status=204)


# -- /users/<name>/shared, /groups/<name>/shared ----------------------------------------


@bp.get("/users/<name>/shared")
def user_shared(name: str) -> Response:
    """Servers shared with a user, directly or through their groups."""
    require_scope("read:users:shares", user=name)
    user = user_or_404(name)
    offset, limit = page_args()
    rows, total = get_shares().with_user(user.id, offset, limit)
    return envelope([share_model(r) for r in rows], offset, limit, total)


@bp.get("/groups/<name>/shared")
def group_shared(name: str) -> Response:
    require_scope("read:groups:shares", group=name)
    group = get_groups().get(name)
    offset, limit = page_args()
    rows, total = get_shares().with_group(group.id, offset, limit)
    return envelope([share_model(r) for r in rows], offset, limit, total)


def _one_share(user: str | None, group: str | None, owner: str, server_name: str) -> Share:
    server = get_servers().get_server(owner, server_name)
    share = None
    if server is not None and user is not None:
        found = get_users().get(user)
        if found is not None:
            share = get_shares().find(server.id, user_id=found.id, group_id=None)
    elif server is not None and group is not None:
        try:
            share = get_shares().find(server.id, user_id=None, group_id=get_groups().get(group).id)
        except NotFound:
            pass
    if share is None:
        who = f"user {user}" if user is not None else f"group {group}"
        raise HubError(404, f"No such share for {who} on {owner}/{server_name}")
    return share


@bp.route("/users/<name>/shared/<owner>/", methods=["GET", "DELETE"])
@bp.route("/users/<name>/shared/<owner>/<server_name>", methods=["GET", "DELETE"])
def users_share(name: str, owner: str, server_name: str = "") -> Response:
    """One server shared with a user: read it, or give it up (self-revocation)."""
    scope = "users:shares" if request.method == "DELETE" else "read:users:shares"
    require_scope(scope, user=name)
    share = _one_share(name, None, owner, server_name)
    return _read_or_delete(share)


@bp.route("/groups/<name>/shared/<owner>/", methods=["GET", "DELETE"])
@bp.route("/groups/<name>/shared/<owner>/<server_name>", methods=["GET", "DELETE"])
def groups_share(name: str, owner: str, server_name: str = "") -> Response:
    scope = "groups:shares" if request.method == "DELETE" else "read:groups:shares"
    require_scope(scope, group=name)
    share = _one_share(None, name, owner, server_name)
    return _read_or_delete(share)


def _read_or_delete(share: Share) -> Response:
    if request.method == "DELETE":
        get_shares().delete(share.id)
        return Response(status=204)
    return jsonify(share_model(share))


# -- /share-codes -------------------------------------------------------------------


@bp.get("/share-codes/<name>")
def owner_codes(name: str) -> Response:
    require_scope("read:shares", user=name)
    owner = user_or_404(name)
    offset, limit = page_args()
    rows, total = get_shares().codes(owner.id, None, offset, limit)
    return envelope([share_code_model(r) for r in rows], offset, limit, total)


@bp.route("/share-codes/<name>/", methods=["GET"])
@bp.route("/share-codes/<name>/<server_name>", methods=["GET"])
def server_codes(name: str, server_name: str = "") -> Response:
    require_scope("read:shares", user=name, server=f"{name}/{server_name}")
    server = _server_or_404(name, server_name)
    offset, limit = page_args()
    rows, total = get_shares().codes(server.user_id, server.id, offset, limit)
    return envelope([share_code_model(r) for r in rows], offset, limit, total)


@bp.route("/share-codes/<name>/", methods=["POST"])
@bp.route("/share-codes/<name>/<server_name>", methods=["POST"])
def create_code(name: str, server_name: str = "") -> Response:
    """A new share code (the code itself shown only in this answer)."""
    identity = require_scope("shares", user=name, server=f"{name}/{server_name}")
    body = _body({"scopes", "expires_in"})
    expires_in = body.get("expires_in", DEFAULT_CODE_LIFETIME)
    low, high = CODE_LIFETIME_RANGE
    if type(expires_in) is not int or not low <= expires_in <= high:
        raise HubError(400, f"expires_in must be an integer from {low} to {high} (seconds)")
    scopes = _granted(body, name, server_name)
    for scope in scopes:
        if not identity.has_scope(scope.partition("!")[0], name, f"{name}/{server_name}"):
            raise HubError(403, f"Do not have permission to grant share with scope {scope}")
    row, code = get_shares().new_code(_server_or_404(name, server_name), scopes, expires_in)
    return jsonify(share_code_model(row, code))


@bp.route("/share-codes/<name>/", methods=["DELETE"])
@bp.route("/share-codes/<name>/<server_name>", methods=["DELETE"])
def delete_codes(name: str, server_name: str = "") -> Response:
    """Delete one code (?code= or ?id=sc_<N>) or all of a server's."""
    require_scope("shares", user=name, server=f"{name}/{server_name}")
    server = _server_or_404(name, server_name)
    get_shares().delete_codes(
        server.id, code=request.args.get("code", ""), code_id=request.args.get("id", "")
    )
    return Response(status=204)
