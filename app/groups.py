"""Domain: groups of users and their free-form properties (JupyterHub's).

Plain Python, no Flask request objects. Groups come back detached, with their
members loaded (by name; not the members' servers or groups).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from flask import Flask, current_app
from sqlalchemy import func, select
from sqlalchemy.orm import Session, lazyload, selectinload

from app.db import Database, get_db
from app.models import Group, User
from app.outcomes import Conflict, Invalid, NotFound, shown
from app.renames import forget_group
from app.users import normalize_username

GROUP_NAME_RE = re.compile(r"[\w.@+:~-]{1,255}")
# Members by name only: their servers and groups are not needed for a group's model.
WITH_MEMBERS = selectinload(Group.users).options(
    lazyload(User.servers), lazyload(User.groups), lazyload(User.roles)
)


def validate_group_name(name: object) -> str:
    """The name if it is a valid group name, else Invalid saying why."""
    if not isinstance(name, str) or not GROUP_NAME_RE.fullmatch(name):
        raise Invalid(
            f"Invalid group name {shown(name)}: use 1 to 255 letters, digits and . _ - @ + : ~"
        )
    return name


class GroupService:
    """Groups and their members, over a Database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def page(
        self, *, offset: int = 0, limit: int | None = None, names: Iterable[str] | None = None
    ) -> tuple[list[Group], int]:
        """A page of groups ordered by id (only those in `names` if given), and the total."""
        query = select(Group).options(WITH_MEMBERS)
        if names is not None:
            query = query.where(Group.name.in_(list(names)))
        with self.db.read() as session:
            total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
            groups = session.scalars(query.order_by(Group.id).offset(offset).limit(limit)).all()
            return list(groups), total

    def get(self, name: str) -> Group:
        """The group called name; NotFound if there is none."""
        with self.db.read() as session:
            return _find(session, name)

    def create_many(self, names: Iterable[object], *, members: Iterable[str] = ()) -> list[Group]:
        """Create every group, each with the same members, or none (Conflict naming one)."""
        wanted = list(dict.fromkeys(validate_group_name(n) for n in names))
        usernames = _normalized(members)
        with self.db.write() as session:
            taken = session.scalars(select(Group.name).where(Group.name.in_(wanted))).first()
            if taken is not None:
                raise Conflict(f"Group {taken} already exists")
            users = _users(session, usernames)
            created = [
                Group(name=name, properties={}, users=list(users), roles=[]) for name in wanted
            ]
            session.add_all(created)
            session.flush()
            return created

    def create(self, name: str, *, members: Iterable[str] = ()) -> Group:
        """Create one group with members; Conflict if it exists."""
        return self.create_many([name], members=members)[0]

    def delete(self, name: str) -> None:
        """Delete a group (its members stay); NotFound if there is none."""
        with self.db.write() as session:
            session.delete(_find(session, name))
            forget_group(session, name)

    def add_members(self, name: str, members: Iterable[str]) -> Group:
        """Add users to a group (members already in it are fine)."""
        usernames = _normalized(members)
        with self.db.write() as session:
            group = _find(session, name)
            have = {u.name for u in group.users}
            group.users.extend(u for u in _users(session, usernames) if u.name not in have)
            session.flush()
            return group

    def remove_members(self, name: str, members: Iterable[str]) -> Group:
        """Remove users from a group (non-members are fine, unknown users are not)."""
        usernames = _normalized(members)
        with self.db.write() as session:
            group = _find(session, name)
            _users(session, usernames)
            leaving = set(usernames)
            group.users = [u for u in group.users if u.name not in leaving]
            session.flush()
            return group

    def properties(self, name: str) -> dict[str, Any]:
        """A group's properties."""
        return self.get(name).properties or {}

    def set_properties(self, name: str, properties: dict[str, Any]) -> Group:
        """Replace a group's properties."""
        with self.db.write() as session:
            group = _find(session, name)
            group.properties = properties
            session.flush()
            return group

    def group_names_of(self, user_name: str) -> frozenset[str]:
        """The names of the groups a user is in."""
        with self.db.read() as session:
            query = select(Group.name).join(Group.users).where(User.name == user_name)
            return frozenset(session.scalars(query))


def _find(session: Session, name: str) -> Group:
    group = session.scalar(select(Group).where(Group.name == name).options(WITH_MEMBERS))
    if group is None:
        raise NotFound(f"No such group: {name}")
    return group


def _normalized(names: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(normalize_username(n) for n in names))


def _users(session: Session, names: list[str]) -> list[User]:
    """The users called names; Invalid naming one that does not exist."""
    if not names:
        return []
    found = session.scalars(
        select(User)
        .where(User.name.in_(names))
        .options(lazyload(User.servers), lazyload(User.groups), lazyload(User.roles))
    ).all()
    missing = set(names) - {u.name for u in found}
    if missing:
        raise Invalid(f"No such user: {sorted(missing)[0]}")
    return list(found)


def init_app(app: Flask) -> None:
    """Create the GroupService."""
    app.extensions["flaskhub.groups"] = GroupService(get_db(app))


def get_groups(app: Flask | None = None) -> GroupService:
    """The GroupService of the given or current app."""
    return (app or current_app).extensions["flaskhub.groups"]
