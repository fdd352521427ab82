"""Users and their servers: /hub/api/users[/<name>[/server[/progress]|/activity]]."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from flask import Blueprint, Response, jsonify, request

from app.api.common import (
    created_response,
    include_stopped,
    json_body,
    require_any_scope,
    require_identity,
    require_scope,
    require_user,
    user_or_404,
)
from app.api.named_servers import ServerRequest, server_request, start_with
from app.api.pagination import page_args, paginated
from app.api.progress import progress_response
from app.api.serialize import isoformat, user_model
from app.api.visibility import USER_FIELDS, visibility
from app.auth import get_passwords
from app.auth.state import get_auth_states
from app.errors import HubError, result_response
from app.identity import Identity
from app.models import User, utcnow
from app.outcomes import Conflict, Outcome, shown
from app.scopes import parse_scopes
from app.servers import get_servers
from app.user_views import UserView
from app.users import get_users, normalize_username

bp = Blueprint("users", __name__)

# Clocks differ a little; JupyterHub accepts activity up to an hour ahead.
MAX_ACTIVITY_AHEAD = timedelta(hours=1)


@bp.get("/users")
def list_users() -> Response:
    """Users the caller may list (all, or by its `list:users` filters; else only itself),
    each model trimmed to what its read scopes show."""
    identity = require_identity()
    offset, limit = page_args()
    args = request.args
    stopped = include_stopped()
    only = _listable(identity)
    users: Sequence[User | UserView] = []
    if only is False:
        mine = get_users().view(identity.user.name) if identity.user is not None else None
        total = 1 if mine is not None else 0
        if mine is not None and offset == 0:
            users = [mine]
    else:
        users, total = get_users().page(
            offset=offset,
            limit=limit,
            state=args.get("state") or None,
            name_filter=args.get("name_filter") or None,
            sort=args.get("sort") or "id",
            only=None if only is True else only,
        )
    seen = visibility(identity, users)
    models = [seen.trim_user(user_model(u, include_stopped=stopped, state=True)) for u in users]
    return jsonify(paginated([m for m in models if m], offset, limit, total))


@bp.post("/users")
def create_users() -> Response:
    identity = require_scope("admin:users")
    body = json_body({})
    if not isinstance(body, dict) or not isinstance(body.get("usernames"), list):
        raise HubError(400, 'Send {"usernames": ["name", ...], "admin": false}.')
    admin = _admin_flag(body)
    _check_may_grant_admin(identity, body)
    names = [normalize_username(n) for n in body["usernames"]]
    if not names:
        raise HubError(400, "No usernames given.")
    created = get_users().create_many(names, admin=admin)
    if not created:
        raise HubError(409, f"All {len(names)} users already exist")
    return created_response([user_model(u) for u in created])


@bp.get("/users/<name>")
def get_user(name: str) -> Response:
    """The user's model, with the fields the caller's read scopes show (JupyterHub's), and
    with admin:auth_state on the user, its auth state too."""
    identity = require_identity()
    if not _reads_a_server_of(identity, name):
        require_any_scope(list(USER_FIELDS), user=name)
    user = get_users().view(name)
    if user is None:
        raise HubError(404, f"No such user: {name}")
    model = user_model(user, include_stopped=include_stopped(), state=True)
    model = visibility(identity, [user]).trim_user(model)
    if identity.has_scope("admin:auth_state", user=user.name):
        model["auth_state"] = get_auth_states().load(user.name)
    return jsonify(model)


@bp.post("/users/<name>")
def create_user(name: str) -> Response:
    identity = require_scope("admin:users")
    name = normalize_username(name)
    body = json_body({})
    if not isinstance(body, dict):
        raise HubError(400, "Body must be a JSON object")
    admin = _admin_flag(body)
    _check_may_grant_admin(identity, body)
    if get_users().get(name) is not None:
        raise HubError(409, f"User {name} already exists")
    created = get_users().create_many([name], admin=admin)
    return created_response(user_model(created[0]))


@bp.patch("/users/<name>")
def update_user(name: str) -> Response:
    """Change any of name, admin, groups and roles (JupyterHub's: a taken name is 400)."""
    identity = require_scope("admin:users")
    body = _user_changes(json_body())
    target = user_or_404(name)
    if not identity.admin and (target.admin or "roles" in body):
        raise HubError(403, "Only admins can modify other admins or give roles")
    _check_may_grant_admin(identity, body)
    if "auth_state" in body:
        _check_auth_state(identity, name, body["auth_state"])
    new_name = normalize_username(body["name"]) if "name" in body else None
    try:
        user = get_users().update(
            name,
            new_name=new_name,
            admin=body.get("admin"),
            groups=body.get("groups"),
            roles=body.get("roles"),
        )
    except Conflict as e:
        raise HubError(400, f"{e.message}, username must be unique") from None
    if "auth_state" in body:
        get_auth_states().save(user.name, body["auth_state"])
    # Read again, not from the identity: this request changed the user.
    return jsonify(user_model(get_users().get(user.name) or user))


@bp.delete("/users/<name>")
def delete_user(name: str) -> Response:
    identity = require_scope("delete:users")
    user = user_or_404(name)
    if identity.user is not None and identity.user.name == user.name:
        raise HubError(400, "Cannot delete yourself!")
    servers = get_servers()
    for server in user.servers:
        if server.active and servers.stop_server(user.name, server.name).outcome != Outcome.STOPPED:
            raise HubError(400, f"{name}'s server is stopping: try deleting again shortly.")
    get_users().delete(user.name)
    servers.delete_user_files(user)
    return Response(status=204)


@bp.put("/users/<name>/password")
def set_password(name: str) -> Response:
    """{"password", "current_password"}: one's own (current password needed) or, with
    admin:users on the user, anyone else's (reset). 204; the user's logins end."""
    identity = require_identity()
    body = json_body({})
    if not isinstance(body, dict) or set(body) - {"password", "current_password"}:
        raise HubError(400, 'Send {"password": ..., "current_password": ...}.')
    if identity.user is not None and identity.user.name == name and identity.full_access:
        get_passwords().change(
            name, body.get("current_password"), body.get("password"), request.remote_addr
        )
    else:
        require_scope("admin:users", user=name)
        get_passwords().reset(user_or_404(name).name, body.get("password"))
    return Response(status=204)


@bp.post("/users/<name>/server")
def start_server(name: str) -> Response:
    require_scope("start:servers", user=name)
    try:
        wanted = server_request()
    except HubError:
        require_user(name)  # an unknown user's 404 before a bad body's 400, as in JupyterHub
        raise
    # The start answers 404 for an unknown user (the claim reads the user anyway).
    # The default server's display name is its (empty) name, as in JupyterHub.
    return start_with(name, "", ServerRequest(None, wanted.user_options))


@bp.delete("/users/<name>/server")
def stop_server(name: str) -> Response:
    require_scope("delete:servers", user=name)
    require_user(name)
    return result_response(get_servers().stop_server(name, ""))


@bp.get("/users/<name>/server/progress")
def progress(name: str) -> Response:
    """Server-sent events: "Server requested", the spawner's own, then ready or failed."""
    require_scope("read:servers", user=name)
    user = user_or_404(name)
    if user.server("") is None:
        raise HubError(404, f"{name} has no server")
    return progress_response(get_servers(), user.name)


@bp.post("/users/<name>/activity")
def activity(name: str) -> Response:
    """A server reports when it was last used: {"last_activity", "servers": {...}}."""
    require_scope("users:activity", user=name)
    user = user_or_404(name)
    body = json_body({})
    if not isinstance(body, dict):
        raise HubError(400, "Body must be a JSON object")
    if not body.get("last_activity") and not body.get("servers"):
        raise HubError(400, "Send at least one of last_activity and servers")
    when = _parse_time(body.get("last_activity")) if body.get("last_activity") else None
    get_users().record_activity(user.id, when, _server_stamps(user, body.get("servers") or {}))
    return Response(status=200)


def _server_stamps(user: User, servers: object) -> dict[str, datetime]:
    """The "servers" of an activity report, checked: {name: time} of the user's servers."""
    if not isinstance(servers, dict):
        raise HubError(400, 'servers must be a JSON object: {"<name>": {"last_activity": ...}}')
    stamps = {}
    for server_name, info in servers.items():
        if not isinstance(info, dict) or "last_activity" not in info:
            raise HubError(400, f"servers.{server_name} needs last_activity")
        stamps[server_name] = _parse_time(info["last_activity"])
    # JupyterHub's answer to a report for a server the user has not got (stopped ones count).
    missing = sorted(stamps.keys() - {server.name for server in user.servers})
    if missing:
        raise HubError(400, f"No such server {shown(missing[0])} for user {user.name}")
    return stamps


def _reads_a_server_of(identity: Identity, name: str) -> bool:
    """`read:servers!server=<name>/…`: enough to read that user's model (its servers)."""
    filters = parse_scopes(identity.scopes).get("read:servers")
    servers = filters.get("server", ()) if isinstance(filters, dict) else ()
    return any(server.partition("/")[0] == name for server in servers)


def _listable(identity: Identity) -> tuple[frozenset[str], frozenset[str]] | bool:
    """Whom the caller may list: True (all), (names, groups) of its `list:users`
    filters, or False (only itself)."""
    if identity.has_unfiltered_scope("list:users") or identity.has_unfiltered_scope("read:users"):
        return True
    filters = parse_scopes(identity.scopes).get("list:users")
    if not isinstance(filters, dict):
        return False
    if set(filters) - {"user", "group"}:
        # JupyterHub's: a !server= filter must not widen to whole users.
        raise HubError(403, "list:users filtered by server or service cannot list users")
    return filters.get("user", frozenset()), filters.get("group", frozenset())


# What PATCH /users/<name> may change, and the JSON type of each.
USER_CHANGES: dict[str, type | tuple[type, ...]] = {
    "name": str,
    "admin": bool,
    "groups": list,
    "roles": list,
    "auth_state": (dict, type(None)),
}


def _kind(kind: type | tuple[type, ...]) -> str:
    """How a message names an expected JSON type."""
    names = {dict: "an object", type(None): "null", list: "a list", str: "a str", bool: "a bool"}
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _user_changes(body: object) -> dict[str, Any]:
    """The body of PATCH /users/<name>, checked: known keys of the right types."""
    if not isinstance(body, dict) or not body.keys() <= USER_CHANGES.keys():
        keys = ", ".join(f'"{k}"' for k in USER_CHANGES)
        raise HubError(400, f"Send an object with any of {keys}; got {shown(body)}")
    for key, value in body.items():
        if not isinstance(value, USER_CHANGES[key]):
            raise HubError(
                400, f"user.{key} must be {_kind(USER_CHANGES[key])}, not {shown(value)}"
            )
    for key in ("groups", "roles"):
        if not all(isinstance(item, str) for item in body.get(key, ())):
            raise HubError(400, f"user.{key} must be a list of {key[:-1]} names")
    if "roles" in body:
        # The admin role is the admin flag.
        in_roles = "admin" in body["roles"]
        if body.setdefault("admin", in_roles) != in_roles:
            raise HubError(400, "user.admin and the admin role in user.roles disagree")
    return body


def _admin_flag(body: dict) -> bool:
    """The body's "admin": true or false (a string such as "no" would be truthy)."""
    admin = body.get("admin", False)
    if not isinstance(admin, bool):
        raise HubError(400, f"admin must be true or false, not {shown(admin)}")
    return admin


def _check_may_grant_admin(identity: Identity, body: dict) -> None:
    if body.get("admin") and not identity.admin:
        raise HubError(403, "Only admins can grant admin permissions")


def _check_auth_state(identity: Identity, name: str, state: object) -> None:
    """A PATCH may set auth state: an object or null, with admin:auth_state, when kept."""
    if not identity.has_scope("admin:auth_state", user=name):
        raise HubError(403, f"Setting the auth state of {name} needs the scope admin:auth_state")
    if state is not None and not isinstance(state, dict):
        raise HubError(400, f"auth_state must be a JSON object or null, not {shown(state)}")
    if not get_auth_states().enabled:
        raise HubError(400, "This hub keeps no auth state: set crypt_key (FLASKHUB_CRYPT_KEY).")


def _parse_time(value: object) -> datetime:
    if not isinstance(value, str):
        raise HubError(400, f"Timestamp must be an ISO 8601 string, got {shown(value)}")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise HubError(
            400,
            f"Invalid timestamp {shown(value)}: use ISO 8601, e.g. "
            f"{isoformat(datetime(2024, 1, 1))}",
        ) from None
    if parsed.tzinfo is None:
        raise HubError(400, f"Timestamp {shown(value)} needs a time zone (e.g. a trailing Z)")
    if parsed > utcnow() + MAX_ACTIVITY_AHEAD:
        # A date far ahead would keep the idle culler away from this user for ever.
        raise HubError(400, f"Timestamp {shown(value)} is in the future")
    return parsed
