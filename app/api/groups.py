"""Groups of users: /hub/api/groups[/<name>[/users|/properties]] (JupyterHub's).

Reading needs `list:groups` / `read:groups`, changing members and properties
`groups`, creating `admin:groups`, deleting `delete:groups` (all in the admin
role; `!group=NAME` filters narrow them to one group).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from flask import Blueprint, Response, jsonify
from sqlalchemy import func, select
from sqlalchemy.orm import Session, lazyload, selectinload

from app.api.common import json_body, require_identity, require_scope
from app.api.pagination import page_args, paginated
from app.db import get_db
from app.errors import HubError
from app.models import Group, User
from app.users import normalize_username

bp = Blueprint("groups", __name__)

log = logging.getLogger(__name__)

GROUP_NAME_RE = re.compile(r"[\w.@+:~-]{1,255}")
# Members by name only: their servers and groups are not needed for a group's model.
WITH_MEMBERS = selectinload(Group.users).options(lazyload(User.servers), lazyload(User.groups))


@bp.get("/groups")
def list_groups() -> Response:
    identity = require_identity()
    if not identity.has_scope("list:groups"):
        raise HubError(
            403, "Action is not authorized with current scopes; requires any of [list:groups]."
        )
    offset, limit = page_args()
    query = select(Group).options(WITH_MEMBERS)
    if not identity.has_unfiltered_scope("list:groups"):
        prefix = "list:groups!group="
        visible = [s.removeprefix(prefix) for s in identity.scopes if s.startswith(prefix)]
        query = query.where(Group.name.in_(visible))
    with get_db().read() as session:
        total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
        groups = session.scalars(query.order_by(Group.id).offset(offset).limit(limit)).all()
        items = [group_model(g) for g in groups]
    return jsonify(paginated(items, offset, limit, total))


@bp.post("/groups")
def create_groups() -> Response:
    """{"groups": [names], "users": [names]}: all are created, or none (409 if one exists)."""
    require_scope("admin:groups")
    body = json_body({})
    if not isinstance(body, dict) or not body.get("groups"):
        raise HubError(400, "Must specify at least one group to create")
    names = body["groups"]
    if not isinstance(names, list):
        raise HubError(400, "groups must be a list of group names")
    names = list(dict.fromkeys(_valid_name(n) for n in names))
    usernames = _usernames(body, required=False)
    with get_db().write() as session:
        taken = session.scalars(select(Group.name).where(Group.name.in_(names))).first()
        if taken is not None:
            raise HubError(409, f"Group {taken} already exists")
        members = _users(session, usernames)
        created = [Group(name=name, properties={}, users=list(members)) for name in names]
        session.add_all(created)
        session.flush()
        models = [group_model(g) for g in created]
    log.info("Created groups %s with %s users", ", ".join(names), len(usernames))
    return _json(201, models)


@bp.get("/groups/<name>")
def get_group(name: str) -> Response:
    require_scope("read:groups", group=name)
    with get_db().read() as session:
        return jsonify(group_model(_group_or_404(session, name)))


@bp.post("/groups/<name>")
def create_group(name: str) -> Response:
    """Create one group, optionally with members: {"users": [names]}."""
    require_scope("admin:groups")
    name = _valid_name(name)
    body = json_body({})
    if not isinstance(body, dict) or set(body) - {"users", "name"}:
        raise HubError(400, 'Send nothing, or {"users": ["name", ...]}.')
    usernames = _usernames(body, required=False)
    with get_db().write() as session:
        if session.scalar(select(Group.id).where(Group.name == name)) is not None:
            raise HubError(409, f"Group {name} already exists")
        group = Group(name=name, properties={}, users=list(_users(session, usernames)))
        session.add(group)
        session.flush()
        model = group_model(group)
    log.info("Created group %s with %s users", name, len(usernames))
    return _json(201, model)


@bp.delete("/groups/<name>")
def delete_group(name: str) -> Response:
    require_scope("delete:groups", group=name)
    with get_db().write() as session:
        session.delete(_group_or_404(session, name))
    log.info("Deleted group %s", name)
    return Response(status=204)


@bp.post("/groups/<name>/users")
def add_members(name: str) -> Response:
    """Add users: {"users": [names]} (already members are fine); the group's model."""
    require_scope("groups", group=name)
    usernames = _usernames(json_body({}), required=True)
    with get_db().write() as session:
        group = _group_or_404(session, name)
        have = {u.name for u in group.users}
        group.users.extend(u for u in _users(session, usernames) if u.name not in have)
        session.flush()
        model = group_model(group)
    return jsonify(model)


@bp.delete("/groups/<name>/users")
def remove_members(name: str) -> Response:
    """Remove users: {"users": [names]} (non-members are fine); the group's model."""
    require_scope("groups", group=name)
    usernames = _usernames(json_body({}), required=True)
    with get_db().write() as session:
        group = _group_or_404(session, name)
        _users(session, usernames)  # unknown names are an error, as when adding
        group.users = [u for u in group.users if u.name not in set(usernames)]
        session.flush()
        model = group_model(group)
    return jsonify(model)


@bp.get("/groups/<name>/properties")
def get_properties(name: str) -> Response:
    require_scope("read:groups", group=name)
    with get_db().read() as session:
        return jsonify(_group_or_404(session, name).properties or {})


@bp.put("/groups/<name>/properties")
def set_properties(name: str) -> Response:
    """Replace the group's properties with the JSON object sent; the group's model."""
    require_scope("groups", group=name)
    properties = json_body()
    if not isinstance(properties, dict):
        raise HubError(400, "Properties must be a JSON object")
    with get_db().write() as session:
        group = _group_or_404(session, name)
        group.properties = properties
        session.flush()
        model = group_model(group)
    return jsonify(model)


def group_model(group: Group) -> dict[str, Any]:
    """JupyterHub's group model."""
    return {
        "kind": "group",
        "name": group.name,
        "roles": [],
        "users": sorted(user.name for user in group.users),
        "properties": group.properties or {},
    }


def _group_or_404(session: Session, name: str) -> Group:
    group = session.scalar(select(Group).where(Group.name == name).options(WITH_MEMBERS))
    if group is None:
        raise HubError(404, f"No such group: {name}")
    return group


def _valid_name(name: object) -> str:
    if not isinstance(name, str) or not GROUP_NAME_RE.fullmatch(name):
        raise HubError(
            400,
            f"Invalid group name {name!r}: use 1 to 255 letters, digits and . _ - @ + : ~",
        )
    return name


def _usernames(body: object, *, required: bool) -> list[str]:
    """The normalised names of body["users"] (400 if it is not a list of valid names)."""
    if not isinstance(body, dict) or ("users" not in body and required):
        raise HubError(400, 'Send {"users": ["name", ...]}.')
    names = body.get("users", [])
    if not isinstance(names, list):
        raise HubError(400, "users must be a list of usernames")
    return list(dict.fromkeys(normalize_username(n) for n in names))


def _users(session: Session, names: list[str]) -> list[User]:
    """The users called names, or 400 naming one that does not exist."""
    if not names:
        return []
    found = session.scalars(
        select(User)
        .where(User.name.in_(names))
        .options(lazyload(User.servers), lazyload(User.groups))
    ).all()
    missing = set(names) - {u.name for u in found}
    if missing:
        raise HubError(400, f"No such user: {sorted(missing)[0]}")
    return list(found)


def _json(status: int, data: object) -> Response:
    response = jsonify(data)
    response.status_code = status
    return response
