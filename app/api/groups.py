"""Groups of users: /hub/api/groups[/<name>[/users|/properties]] (JupyterHub's).

Reading needs `list:groups` / `read:groups`, changing members and properties
`groups`, creating `admin:groups`, deleting `delete:groups` (all in the admin
role; `!group=NAME` filters narrow them to one group).
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, jsonify

from app.api.common import (
    created_response,
    json_body,
    require_any_scope,
    require_identity,
    require_scope,
)
from app.api.pagination import page_args, paginated
from app.api.visibility import GROUP_FIELDS, visibility
from app.errors import HubError
from app.groups import get_groups
from app.models import Group

bp = Blueprint("groups", __name__)

log = logging.getLogger(__name__)


@bp.get("/groups")
def list_groups() -> Response:
    identity = require_identity()
    if not identity.has_scope("list:groups"):
        raise HubError(
            403, "Action is not authorized with current scopes; requires any of [list:groups]."
        )
    offset, limit = page_args()
    visible = None
    if not identity.has_unfiltered_scope("list:groups"):
        prefix = "list:groups!group="
        visible = [s.removeprefix(prefix) for s in identity.scopes if s.startswith(prefix)]
    groups, total = get_groups().page(offset=offset, limit=limit, names=visible)
    seen = visibility(identity)
    models = [seen.trim_group(group_model(g)) for g in groups]
    return jsonify(paginated([m for m in models if m], offset, limit, total))


@bp.post("/groups")
def create_groups() -> Response:
    """{"groups": [names], "users": [names]}: all are created, or none (409 if one exists)."""
    require_scope("admin:groups")
    body = json_body({})
    if not isinstance(body, dict) or not body.get("groups"):
        raise HubError(400, "Must specify at least one group to create")
    if not isinstance(body["groups"], list):
        raise HubError(400, "groups must be a list of group names")
    usernames = _usernames(body, required=False)
    created = get_groups().create_many(body["groups"], members=usernames)
    names = ", ".join(g.name for g in created)
    log.info("Created groups %s with %s users", names, len(created[0].users))
    return created_response([group_model(g) for g in created])


@bp.get("/groups/<name>")
def get_group(name: str) -> Response:
    """The group's model, with the fields the caller's read scopes show (JupyterHub's)."""
    identity = require_any_scope(list(GROUP_FIELDS), group=name)
    return jsonify(visibility(identity).trim_group(group_model(get_groups().get(name))))


@bp.post("/groups/<name>")
def create_group(name: str) -> Response:
    """Create one group, optionally with members: {"users": [names]}."""
    require_scope("admin:groups")
    body = json_body({})
    if not isinstance(body, dict) or set(body) - {"users", "name"}:
        raise HubError(400, 'Send nothing, or {"users": ["name", ...]}.')
    group = get_groups().create(name, members=_usernames(body, required=False))
    log.info("Created group %s with %s users", group.name, len(group.users))
    return created_response(group_model(group))


@bp.delete("/groups/<name>")
def delete_group(name: str) -> Response:
    require_scope("delete:groups", group=name)
    get_groups().delete(name)
    log.info("Deleted group %s", name)
    return Response(status=204)


@bp.post("/groups/<name>/users")
def add_members(name: str) -> Response:
    """Add users: {"users": [names]} (already members are fine); the group's model."""
    require_scope("groups", group=name)
    group = get_groups().add_members(name, _usernames(json_body({}), required=True))
    return jsonify(group_model(group))


@bp.delete("/groups/<name>/users")
def remove_members(name: str) -> Response:
    """Remove users: {"users": [names]} (non-members are fine); the group's model."""
    require_scope("groups", group=name)
    group = get_groups().remove_members(name, _usernames(json_body({}), required=True))
    return jsonify(group_model(group))


@bp.get("/groups/<name>/properties")
def get_properties(name: str) -> Response:
    require_scope("read:groups", group=name)
    return jsonify(get_groups().properties(name))


@bp.put("/groups/<name>/properties")
def set_properties(name: str) -> Response:
    """Replace the group's properties with the JSON object sent; the group's model."""
    require_scope("groups", group=name)
    properties = json_body()
    if not isinstance(properties, dict):
        raise HubError(400, "Properties must be a JSON object")
    return jsonify(group_model(get_groups().set_properties(name, properties)))


def group_model(group: Group) -> dict[str, Any]:
    """JupyterHub's group model."""
    return {
        "kind": "group",
        "name": group.name,
        "roles": [role.name for role in group.roles],
        "users": sorted(user.name for user in group.users),
        "properties": group.properties or {},
    }


def _usernames(body: object, *, required: bool) -> list[str]:
    """The names of body["users"] (400 if it is not a list)."""
    if not isinstance(body, dict) or ("users" not in body and required):
        raise HubError(400, 'Send {"users": ["name", ...]}.')
    names = body.get("users", [])
    if not isinstance(names, list):
        raise HubError(400, "users must be a list of usernames")
    return names
