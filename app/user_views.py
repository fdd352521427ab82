"""Plain views of users: what the user model shows, read without the ORM.

A page of 200 users as ORM objects spent three quarters of its time building
objects and collections; three plain SELECTs (users, their servers, their
groups and roles) filled into small dataclasses give the same model for a
fraction. One user (GET /users/<name>, the hottest read) takes one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    CompoundSelect,
    Connection,
    Select,
    Table,
    bindparam,
    literal,
    literal_column,
    null,
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
_NAME: BindParameter[str] = bindparam("name")


def _names_of(kind: str, table: Table, named: type[Group] | type[Role]) -> Select[Any]:
    """A row of ONE_USER_VIEW per group or role (kind) of the user called :name: its name where a
    server's is, and nothing else."""
    columns: list[Any] = [null()] * (1 + len(_USER_COLUMNS) + 1 + len(_SERVER_COLUMNS))
    columns[0], columns[len(_USER_COLUMNS) + 2] = literal_column(f"'{kind}'"), named.name
    key = table.c.group_id if named is Group else table.c.role_id
    return (
        select(*columns)
        .select_from(table)
        .join(named, named.id == key)
        .join(User, User.id == table.c.user_id)
        .where(User.name == _NAME)
    )


# One user with their servers, groups and roles in one statement (GET /users/<name>, the
# hottest read). Ordered by kind: the user's groups, their roles, then a row per server
# (one with no server if they have none). The first SELECT gives the columns their types.
ONE_USER_VIEW = union_all(
    select(
        literal_column("'server'"), *_USER_COLUMNS, Server.id.label("server_id"), *_SERVER_COLUMNS
    )
    .outerjoin(Server, Server.user_id == User.id)
    .where(User.name == _NAME),
    _names_of("group", user_group_map, Group),
    _names_of("role", user_role_map, Role),
).order_by(*(literal_column(str(i)) for i in (1, len(_USER_COLUMNS) + 2, len(_USER_COLUMNS) + 3)))
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


def user_view(rows: Sequence[Sequence[Any]]) -> UserView | None:
    """The user of ONE_USER_VIEW's rows as a view, or None (no such user)."""
    if not rows or rows[-1][0] != "server":
        return None
    n = len(_USER_COLUMNS)
    user = UserView(*rows[-1][1 : n + 1])
    for kind, *values in rows:
        if kind == "server" and values[n] is not None:
            user.servers.append(ServerView(user, *values[n + 1 :]))
        elif kind != "server":
            (user.groups if kind == "group" else user.roles).append(GroupView(values[n + 1]))
    return user


def _add_memberships(conn: Connection, users: dict[int, UserView]) -> None:
    """Fill in the groups and roles of users ({id: view}), each by name."""
    found = conn.execute(_MEMBERSHIPS, {"ids": list(users)})
    for kind, user_id, name in found:
        user = users[user_id]
        (user.groups if kind == "group" else user.roles).append(GroupView(name))
