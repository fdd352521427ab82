"""Plain views of users for lists: what the user model shows, read without the ORM.

A page of 200 users as ORM objects spent three quarters of its time building
objects and collections; three plain SELECTs (users, their servers, their
groups) filled into small dataclasses give the same model for a fraction.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import BindParameter, Connection, Select, bindparam, select
from sqlalchemy.orm import Session

from app.models import Group, Role, Server, ServerStatus, User, user_group_map, user_role_map


@dataclass
class GroupView:
    """A group or a role: only its name."""

    name: str


@dataclass
class UserView:
    """A user as the user model reads it (name, admin, times, servers, groups, roles)."""

    id: int
    name: str
    admin: bool
    created: datetime
    last_activity: datetime | None
    servers: list[ServerView] = field(default_factory=list)
    groups: list[GroupView] = field(default_factory=list)
    roles: list[GroupView] = field(default_factory=list)

    def server(self, name: str = "") -> ServerView | None:
        return next((s for s in self.servers if s.name == name), None)


@dataclass
class ServerView(ServerStatus):
    """A server as the server model reads it."""

    user: UserView
    name: str
    state: str
    url: str | None
    started: datetime | None
    last_activity: datetime | None
    user_options: dict[str, Any]
    spawner_state: dict[str, Any]


_USER_COLUMNS = (User.id, User.name, User.admin, User.created, User.last_activity)
_BY_NAME = select(*_USER_COLUMNS).where(User.name == bindparam("name"))
# Built once: building a statement costs more than running it on SQLite.
_IDS: BindParameter[list[int]] = bindparam("ids", expanding=True)
_SERVERS = (
    select(
        Server.user_id,
        Server.name,
        Server.state,
        Server.url,
        Server.started,
        Server.last_activity,
        Server.user_options,
        Server.spawner_state,
    )
    .where(Server.user_id.in_(_IDS))
    .order_by(Server.id)
)
_GROUPS = (
    select(user_group_map.c.user_id, Group.name)
    .join(Group, Group.id == user_group_map.c.group_id)
    .where(user_group_map.c.user_id.in_(_IDS))
    .order_by(Group.name)
)
_ROLES = (
    select(user_role_map.c.user_id, Role.name)
    .join(Role, Role.id == user_role_map.c.role_id)
    .where(user_role_map.c.user_id.in_(_IDS))
)


def user_views(session: Session, query: Select[Any]) -> list[UserView]:
    """The users a query of User selects, in its order, as views with servers and groups."""
    conn = session.connection()
    return _views(conn, conn.execute(query.with_only_columns(*_USER_COLUMNS)).all())


def user_view(conn: Connection, name: str) -> UserView | None:
    """The user called name as a view, or None."""
    found = _views(conn, conn.execute(_BY_NAME, {"name": name}).all())
    return found[0] if found else None


def _views(conn: Connection, rows: Sequence[Any]) -> list[UserView]:
    """Views of the users in rows (of _USER_COLUMNS), with their servers, groups, roles."""
    users = {row.id: UserView(*row) for row in rows}
    if not users:
        return []
    ids = {"ids": list(users)}
    for user_id, *values in conn.execute(_SERVERS, ids):
        users[user_id].servers.append(ServerView(users[user_id], *values))
    groups: dict[int, list[GroupView]] = defaultdict(list)
    for user_id, name in conn.execute(_GROUPS, ids):
        groups[user_id].append(GroupView(name))
    roles: dict[int, list[GroupView]] = defaultdict(list)
    for user_id, name in conn.execute(_ROLES, ids):
        roles[user_id].append(GroupView(name))
    for user_id, user in users.items():
        user.groups = groups[user_id]
        user.roles = roles[user_id]
    return list(users.values())
