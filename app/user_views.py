"""Plain views of users: what the user model shows, read without the ORM.

A page of 200 users as ORM objects spent three quarters of its time building
objects and collections; three plain SELECTs (users, their servers, their
groups and roles) filled into small dataclasses give the same model for a
fraction. One user (GET /users/<name>, the hottest read) takes two.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    CompoundSelect,
    Connection,
    Select,
    bindparam,
    literal,
    select,
    union_all,
)
from sqlalchemy.orm import Session

from app.models import Group, Role, Server, ServerStatus, User, user_group_map, user_role_map


@dataclass
class GroupView:
    """A group or a role: only its name."""

    name: str


@dataclass
class UserView:
    """A user as the user model reads it (name, admin, times, profile, servers, groups,
    roles)."""

    id: int
    name: str
    admin: bool
    created: datetime
    last_activity: datetime | None
    user_info: dict[str, Any] | None
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
    display_name: str


# Built once: building a statement costs more than running it on SQLite.
_USER_COLUMNS = (
    User.id,
    User.name,
    User.admin,
    User.created,
    User.last_activity,
    User.user_info,
)
_SERVER_COLUMNS = (
    Server.name,
    Server.state,
    Server.url,
    Server.started,
    Server.last_activity,
    Server.user_options,
    Server.spawner_state,
    Server.display_name,
)
_IDS: BindParameter[list[int]] = bindparam("ids", expanding=True)
# One user and their servers in one statement (a row per server, or one without).
_BY_NAME = (
    select(*_USER_COLUMNS, Server.id.label("server_id"), *_SERVER_COLUMNS)
    .outerjoin(Server, Server.user_id == User.id)
    .where(User.name == bindparam("name"))
    .order_by(Server.id)
)
_SERVERS = (
    select(Server.user_id, *_SERVER_COLUMNS).where(Server.user_id.in_(_IDS)).order_by(Server.id)
)


def _memberships(of: Callable[[ColumnElement[int]], ColumnElement[bool]]) -> CompoundSelect:
    """Groups and roles of the users whose id matches `of`, in one statement, told
    apart by `kind`."""
    return union_all(
        select(literal("group").label("kind"), user_group_map.c.user_id, Group.name)
        .join(Group, Group.id == user_group_map.c.group_id)
        .where(of(user_group_map.c.user_id)),
        select(literal("role").label("kind"), user_role_map.c.user_id, Role.name)
        .join(Role, Role.id == user_role_map.c.role_id)
        .where(of(user_role_map.c.user_id)),
    ).order_by("name")


_MEMBERSHIPS = _memberships(lambda user_id: user_id.in_(_IDS))
# One user's (a list of one would be expanded into the statement at every run).
_MEMBERSHIPS_OF_ONE = _memberships(lambda user_id: user_id == bindparam("id"))


def user_views(session: Session, query: Select[Any]) -> list[UserView]:
    """The users a query of User selects, in its order, as views with servers and groups."""
    conn = session.connection()
    rows = conn.execute(query.with_only_columns(*_USER_COLUMNS)).all()
    users = {row.id: UserView(*row) for row in rows}
    if users:
        for user_id, *values in conn.execute(_SERVERS, {"ids": list(users)}):
            users[user_id].servers.append(ServerView(users[user_id], *values))
        _add_memberships(conn, users)
    return list(users.values())


def user_view(conn: Connection, name: str) -> UserView | None:
    """The user called name as a view, or None."""
    rows = conn.execute(_BY_NAME, {"name": name}).all()
    if not rows:
        return None
    n = len(_USER_COLUMNS)
    user = UserView(*rows[0][:n])
    user.servers = [ServerView(user, *row[n + 1 :]) for row in rows if row.server_id is not None]
    _add_memberships(conn, {user.id: user})
    return user


def _add_memberships(conn: Connection, users: dict[int, UserView]) -> None:
    """Fill in the groups and roles of users ({id: view}), each by name."""
    if len(users) == 1:
        found = conn.execute(_MEMBERSHIPS_OF_ONE, {"id": next(iter(users))})
    else:
        found = conn.execute(_MEMBERSHIPS, {"ids": list(users)})
    for kind, user_id, name in found:
        user = users[user_id]
        (user.groups if kind == "group" else user.roles).append(GroupView(name))
