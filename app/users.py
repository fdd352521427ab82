"""Domain: users. Plain Python, no Flask request objects."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from flask import Flask, current_app
from sqlalchemy import Select, bindparam, delete, func, or_, select, update
from sqlalchemy.orm import Session, joinedload, lazyload

from app.db import Database, DatabaseUnavailable, get_db, rows_changed
from app.models import Group, Server, ServerState, User, new_user, utcnow
from app.names import normalize_username
from app.outcomes import Conflict, Forbidden, Invalid, NotFound, shown
from app.renames import follow_user_rename, forget_user
from app.roles import stored_roles
from app.user_views import ONE_USER_VIEW, UserView, user_view, user_views

# The columns GET /users sorts by (JupyterHub's).
SORT_KEYS = ("id", "name", "last_activity", "server_ready")
# How precisely a token's and a user's last use of the hub is kept (the writes are
# throttled to this: a write per request would serialise every request).
ACTIVITY_RESOLUTION = timedelta(minutes=1)
# A user seen at `seen`: last_activity moves forward, never back.
USER_SEEN = (
    update(User)
    .where(User.id == bindparam("user_id"))
    .where(or_(User.last_activity.is_(None), User.last_activity < bindparam("seen")))
    .values(last_activity=bindparam("seen"))
    .execution_options(synchronize_session=False)
)
# Loading one user: a join instead of the two further queries of "selectin".
# (Server.user is named: a join does not fill in the way back to the parent by itself.)
ONE_USER_LOADS = (
    joinedload(User.servers).joinedload(Server.user),
    joinedload(User.groups),
    joinedload(User.roles),
)


# Built once: asked on every request that names a user it does not load.
_ID_BY_NAME = select(User.id).where(User.name == bindparam("name"))


@functools.lru_cache(maxsize=4)
def _activity_query(periods: int) -> Select[Any]:
    """The user total, then the users active since :since_0, :since_1 ... (built once)."""
    users = select(func.count()).select_from(User)
    return select(
        users.scalar_subquery(),
        *(
            users.where(User.last_activity >= bindparam(f"since_{i}")).scalar_subquery()
            for i in range(periods)
        ),
    )


class UserService:
    """Users, over a Database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def get(self, name: str) -> User | None:
        """The user called name (already normalised), or None."""
        with self.db.read() as session:
            # One statement: the user joined with their servers and groups.
            query = select(User).where(User.name == name).options(*ONE_USER_LOADS)
            return session.scalars(query).unique().one_or_none()

    def view(self, name: str) -> UserView | None:
        """The user called name as a plain view (the user model's fields), or None."""
        return user_view(self.db.rows(ONE_USER_VIEW, {"name": name}))

    def exists(self, name: str) -> bool:
        """Whether a user is called name (one indexed lookup, no objects, no Session)."""
        with self.db.connect() as conn:
            return conn.execute(_ID_BY_NAME, {"name": name}).first() is not None

    def note_seen(self, user: User) -> None:
        """Record that a logged-in user used the hub, at most once per ACTIVITY_RESOLUTION
        and never waiting for the write lock (a busy moment is noted at a later use)."""
        now = utcnow()
        if user.last_activity is not None and now - user.last_activity < ACTIVITY_RESOLUTION:
            return
        try:
            with self.db.write(wait=False) as session:
                session.execute(USER_SEEN, {"user_id": user.id, "seen": now})
        except DatabaseUnavailable:
            return
        user.last_activity = now

    def get_or_create(self, name: str, *, admin: bool = False) -> User:
        """The user called name, created if new."""
        user = self.get(name)
        if user is not None:
            return user
        with self.db.write() as session:
            return get_or_add(session, name, admin=admin)

    def create_many(self, names: Iterable[str], *, admin: bool = False) -> list[User]:
        """Create the users that do not exist yet; return those created."""
        wanted = list(dict.fromkeys(normalize_username(n) for n in names))
        with self.db.write() as session:
            existing = set(session.scalars(select(User.name).where(User.name.in_(wanted))))
            created = [new_user(n, admin) for n in wanted if n not in existing]
            session.add_all(created)
            session.flush()
            for user in created:
                # Load the (empty) relationship so models can be built detached.
                user.servers = []
            return created

    def page(
        self,
        *,
        offset: int = 0,
        limit: int | None = None,
        state: str | None = None,
        name_filter: str | None = None,
        sort: str = "id",
        only: tuple[Iterable[str], Iterable[str]] | None = None,
    ) -> tuple[list[UserView], int]:
        """A page of users (plain views, for the user model), and the total.

        `name_filter` keeps names containing it (JupyterHub's); `sort` is a
        column of SORT_KEYS, descending with a leading "-"; `only` (names,
        groups) keeps those users and the members of those groups.
        """
        order = _sort_order(sort)
        query = select(User)
        if only is not None:
            names, groups = only
            in_groups = User.groups.any(Group.name.in_(list(groups)))
            query = query.where(or_(User.name.in_(list(names)), in_groups))
        if state:
            query = query.where(_state_filter(state))
        if name_filter:
            query = query.where(User.name.icontains(name_filter, autoescape=True))
        with self.db.read() as session:
            total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
            page = query.order_by(*order).offset(offset).limit(limit)
            return user_views(session, page), total

    def activity_counts(self, periods: dict[str, timedelta]) -> tuple[int, dict[str, int]]:
        """The number of users, and {period: users active within it} (last_activity):
        one statement, each active count a range of the index on last_activity (a
        metrics scrape)."""
        now = utcnow()
        since = {f"since_{i}": now - span for i, span in enumerate(periods.values())}
        with self.db.connect() as conn:
            total, *active = conn.execute(_activity_query(len(periods)), since).one()
        return int(total or 0), {name: int(n or 0) for name, n in zip(periods, active, strict=True)}

    def count(self) -> int:
        with self.db.read() as session:
            return session.scalar(select(func.count(User.id))) or 0

    def end_sessions(self, name: str) -> None:
        """Log the user out of every browser: their login cookies no longer match."""
        with self.db.write() as session:
            user = session.scalar(select(User).where(User.name == name))
            if user is not None:
                user.cookie_id = uuid.uuid4().hex

    def set_admin(self, name: str, admin: bool) -> None:
        with self.db.write() as session:
            user = session.scalar(select(User).where(User.name == name))
            if user is not None:
                user.admin = admin

    def update(
        self,
        name: str,
        *,
        new_name: str | None,
        admin: bool | None,
        groups: list[str] | None = None,
        roles: list[str] | None = None,
    ) -> User:
        """Rename, change admin and/or set the groups and stored roles (exactly those,
        which must exist); NotFound if absent, Conflict if the new name is taken."""
        with self.db.write() as session:
            user = session.scalar(select(User).where(User.name == name))
            if user is None:
                raise NotFound(f"No such user: {name}")
            if new_name is not None and new_name != name:
                if session.scalar(select(User.id).where(User.name == new_name)):
                    raise Conflict(f"User {new_name} already exists")
                if any(s.active for s in user.servers):
                    raise Invalid(f"Cannot rename {name} while a server is active")
                user.name = new_name
                follow_user_rename(session, name, new_name)
            if admin is not None:
                user.admin = admin
            if groups is not None:
                user.groups = _existing_groups(session, groups)
            if roles is not None:
                user.roles = stored_roles(session, roles)
            return user

    def record_activity(
        self, user_id: int, when: datetime | None, servers: dict[str, datetime]
    ) -> None:
        """Move a user's and their servers' last_activity forward (never back)."""
        self.record_activities({user_id: (when, servers)})

    def record_activities(
        self, seen: dict[int, tuple[datetime | None, dict[str, datetime]]]
    ) -> None:
        """record_activity for each user id of `seen`, in one write (the route check's:
        every server the proxy saw used, where one write each took a share of the
        hub's CPU while a class started)."""
        if not seen:
            return
        with self.db.write() as session:
            # Their servers (selectin, as always), not their groups and roles.
            users = (
                select(User)
                .where(User.id.in_(seen))
                .options(lazyload(User.groups), lazyload(User.roles))
            )
            for user in session.scalars(users):
                _move_activity(user, *seen[user.id])

    def delete(self, name: str) -> None:
        """Delete the user row (with servers and tokens); callers stop servers first."""
        with self.db.write() as session:
            forget_user(session, name)
            session.execute(delete(User).where(User.name == name))

    def bind_provider(self, name: str, issuer: str, subject: str) -> None:
        """Bind the user to the identity provider's account (issuer, sub) if not bound yet;
        Forbidden if it is bound to another account (a name never changes hands)."""
        with self.db.write() as session:
            bind_provider(session, name, issuer, subject)

    def unbind_provider(self, name: str) -> tuple[str, str] | None:
        """Release the user from the provider's account it is bound to (the next login
        through the provider binds it again); the binding it had, or None."""
        with self.db.write() as session:
            user = session.scalar(select(User).where(User.name == name))
            if user is None:
                raise NotFound(f"No such user: {name}")
            if user.provider_issuer is None or user.provider_subject is None:
                return None
            bound = (user.provider_issuer, user.provider_subject)
            user.provider_issuer = user.provider_subject = None
            return bound

    def unbind_all_providers(self) -> int:
        """Release every name from its provider's account (the hub moved to another
        provider or issuer); the number released."""
        with self.db.write() as session:
            released = session.execute(
                update(User)
                .where(User.provider_subject.is_not(None))
                .values(provider_issuer=None, provider_subject=None)
                .execution_options(synchronize_session=False)
            )
            return rows_changed(released)

    def set_password_hash(self, name: str, password_hash: str) -> None:
        with self.db.write() as session:
            user = session.scalar(select(User).where(User.name == name))
            if user is None:
                raise NotFound(f"No such user: {name}")
            user.password_hash = password_hash


def get_or_add(session: Session, name: str, *, admin: bool = False) -> User:
    """The user called name, added if new, in the caller's write transaction; loaded as
    `UserService.get` loads it (servers, groups, roles)."""
    query = select(User).where(User.name == name).options(*ONE_USER_LOADS)
    user = session.scalars(query).unique().one_or_none()
    if user is None:
        user = new_user(name, admin)
        user.servers = []
        session.add(user)
        session.flush()
    return user


def bind_provider(session: Session, name: str, issuer: str, subject: str) -> None:
    """UserService.bind_provider in the caller's write transaction."""
    # One conditional write: of two first logins at once, exactly one binds.
    session.execute(
        update(User)
        .where(User.name == name, User.provider_subject.is_(None))
        .values(provider_issuer=issuer, provider_subject=subject)
        .execution_options(synchronize_session=False)
    )
    bound = session.execute(
        select(User.provider_issuer, User.provider_subject).where(User.name == name)
    ).one_or_none()
    if bound is not None and tuple(bound) != (issuer, subject):
        raise Forbidden(
            f"The name {name} on this hub belongs to another account of the identity "
            f"provider, so you cannot log in as {name}. If that account was yours and "
            "has changed, ask the hub's administrators to release the name."
        )


def _sort_order(sort: str) -> tuple[Any, ...]:
    """ORDER BY of ?sort=: NULLs first ascending and last descending, then by id."""
    key = sort.removeprefix("-")
    if key not in SORT_KEYS:
        options = ", ".join(f"'{k}'" for k in SORT_KEYS)
        raise Invalid(
            f"sort must be one of {options} (descending with a leading -), not {shown(sort)}"
        )
    if key == "server_ready":
        # Users with a ready server first (last with "-"), then by name.
        ready = (
            select(Server.id)
            .where(Server.user_id == User.id, Server.state == ServerState.RUNNING)
            .where(Server.url.is_not(None))
            .exists()
        )
        first = ready.desc() if not sort.startswith("-") else ready.asc()
        return first, User.name, User.id
    column = getattr(User, key)
    if sort.startswith("-"):
        return column.is_(None), column.desc(), User.id.desc()
    return column.is_not(None), column.asc(), User.id


def _existing_groups(session: Session, names: list[str]) -> list[Group]:
    """The groups called names; Invalid naming those that do not exist."""
    found = list(session.scalars(select(Group).where(Group.name.in_(names))))
    missing = sorted(set(names) - {g.name for g in found})
    if missing:
        raise Invalid(f"No such group: {', '.join(missing)} (create groups with POST /groups)")
    return found


def _move_activity(user: User, when: datetime | None, servers: dict[str, datetime]) -> None:
    latest = max([t for t in (when, *servers.values()) if t is not None], default=None)
    if latest is None:
        return
    user.last_activity = _later(user.last_activity, latest)
    for server in user.servers:
        if server.name in servers:
            server.last_activity = _later(server.last_activity, servers[server.name])


def _later(a: datetime | None, b: datetime) -> datetime:
    return b if a is None or b > a else a


def _state_filter(state: str):  # type: ignore[no-untyped-def]
    """SQL condition on a user's servers for ?state=active|ready|inactive."""
    pending = Server.state.in_([ServerState.SPAWNING, ServerState.STOPPING])
    ready = (Server.state == ServerState.RUNNING) & Server.url.is_not(None)
    condition = {"active": pending | ready, "ready": ready}.get(state)
    if state == "inactive":
        return ~User.servers.any(pending | ready)
    if condition is None:
        raise Invalid("state must be one of active, ready, inactive")
    return User.servers.any(condition)


def init_app(app: Flask) -> None:
    """Create the UserService."""
    app.extensions["flaskhub.users"] = UserService(get_db(app))


def get_users(app: Flask | None = None) -> UserService:
    """The UserService of the given or current app."""
    return (app or current_app).extensions["flaskhub.users"]
