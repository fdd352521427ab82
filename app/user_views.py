"""Plain views of users for lists: what the user model shows, read without the ORM.

A page of 200 users as ORM objects spent three quarters of its time building
objects and collections; three plain SELECTs (users, their servers, their
groups) filled into small dataclasses give the same model for a fraction.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select
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


def user_views(session: Session, query: Select[Any]) -> list[UserView]:
    """The users a query of User selects, in its order, as views with servers and groups."""
    columns = (User.id, User.name, User.admin, User.created, User.last_activity)
    rows = session.execute(query.with_only_columns(*columns)).all()
    users = {row.id: UserView(*row) for row in rows}
    if not users:
        return []
    server_columns = (
        Server.user_id,
        Server.name,
        Server.state,
        Server.url,
        Server.started,
        Server.last_activity,
        Server.user_options,
        Server.spawner_state,
    )
    for user_id, *values in session.execute(
        select(*server_columns).where(Server.user_id.in_(users)).order_by(Server.id)
    ):
        users[user_id].servers.append(ServerView(users[user_id], *values))
    groups: dict[int, list[GroupView]] = defaultdict(list)
    for user_id, name in session.execute(
        select(user_group_map.c.user_id, Group.name)
        .join(Group, Group.id == user_group_map.c.group_id)
        .where(user_group_map.c.user_id.in_(users))
        .order_by(Group.name)
    ):
        groups[user_id].append(GroupView(name))
    roles: dict[int, list[GroupView]] = defaultdict(list)
    for user_id, name in session.execute(
        select(user_role_map.c.user_id, Role.name)
        .join(Role, Role.id == user_role_map.c.role_id)
        .where(user_role_map.c.user_id.in_(users))
    ):
        roles[user_id].append(GroupView(name))
    for user_id, user in users.items():
        user.groups = groups[user_id]
        user.roles = roles[user_id]
    return list(users.values())
