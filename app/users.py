"""Domain: users and API tokens. Plain Python, no Flask request objects."""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import Flask, current_app
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from app.config import get_settings
from app.db import Database
from app.models import APIToken, Server, User, utcnow
from app.outcomes import Conflict, Invalid, NotFound

USERNAME_RE = re.compile(r"[^\W_][\w.@+-]{0,254}")


def normalize_username(name: str) -> str:
    """Lower-case and strip a name, then validate it, or raise Invalid saying why."""
    if not isinstance(name, str):
        raise Invalid("A username must be a string.")
    normal = name.strip().lower()
    if not USERNAME_RE.fullmatch(normal):
        raise Invalid(
            f"Invalid username {name!r}: use 1 to 255 letters, digits and . _ - @ +, "
            "starting with a letter or digit."
        )
    return normal


def hash_token(token: str) -> str:
    """SHA-256 of a token. Tokens are 128 random bits, so a fast hash suffices."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """A fresh random token (32 hex characters, as JupyterHub's)."""
    return secrets.token_hex(16)


@dataclass(frozen=True)
class Service:
    """A tool's identity from the `services` setting."""

    name: str
    admin: bool


class UserService:
    """Users and their tokens, over a Database."""

    def __init__(self, db: Database, *, services: Iterable[dict] = ()) -> None:
        self.db = db
        # Config-defined service tokens live in memory, hashed like the rest.
        self.services_by_hash = {
            hash_token(s["api_token"]): Service(s["name"], bool(s.get("admin", False)))
            for s in services
        }

    # -- users ----------------------------------------------------------------

    def get(self, name: str) -> User | None:
        """The user called name (already normalised), or None."""
        with self.db.read() as session:
            return session.scalar(select(User).where(User.name == name))

    def get_or_create(self, name: str, *, admin: bool = False) -> User:
        """The user called name, created if new (used at login)."""
        user = self.get(name)
        if user is not None:
            return user
        with self.db.write() as session:
            user = session.scalar(select(User).where(User.name == name))
            if user is None:
                user = _new_user(name, admin)
                session.add(user)
                session.flush()
            return user

    def create_many(self, names: Iterable[str], *, admin: bool = False) -> list[User]:
        """Create the users that do not exist yet; return those created."""
        wanted = list(dict.fromkeys(normalize_username(n) for n in names))
        with self.db.write() as session:
            existing = set(session.scalars(select(User.name).where(User.name.in_(wanted))))
            created = [_new_user(n, admin) for n in wanted if n not in existing]
            session.add_all(created)
            session.flush()
            for user in created:
                # Load the (empty) relationship so models can be built detached.
                user.servers = []
            return created

    def page(
        self, *, offset: int = 0, limit: int | None = None, state: str | None = None
    ) -> tuple[list[User], int]:
        """A page of users ordered by id, and the total matching."""
        with self.db.read() as session:
            query = select(User)
            if state:
                query = query.where(_state_filter(state))
            total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
            users = session.scalars(query.order_by(User.id).offset(offset).limit(limit)).all()
            return list(users), total

    def count(self) -> int:
        with self.db.read() as session:
            return session.scalar(select(func.count(User.id))) or 0

    def set_admin(self, name: str, admin: bool) -> None:
        with self.db.write() as session:
            user = session.scalar(select(User).where(User.name == name))
            if user is not None:
                user.admin = admin

    def update(self, name: str, *, new_name: str | None, admin: bool | None) -> User:
        """Rename and/or change admin; NotFound if absent, Conflict if the new name is taken."""
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
            if admin is not None:
                user.admin = admin
            return user

    def record_activity(
        self, user_id: int, when: datetime | None, servers: dict[str, datetime]
    ) -> None:
        """Move a user's and their servers' last_activity forward (never back)."""
        latest = max([t for t in (when, *servers.values()) if t is not None], default=None)
        with self.db.write() as session:
            user = session.get(User, user_id)
            if user is None or latest is None:
                return
            user.last_activity = _later(user.last_activity, latest)
            for server in user.servers:
                if server.name in servers:
                    server.last_activity = _later(server.last_activity, servers[server.name])

    def delete(self, name: str) -> None:
        """Delete the user row (with servers and tokens); callers stop servers first."""
        with self.db.write() as session:
            session.execute(delete(User).where(User.name == name))

    def set_password_hash(self, name: str, password_hash: str) -> None:
        with self.db.write() as session:
            user = session.scalar(select(User).where(User.name == name))
            if user is None:
                raise NotFound(f"No such user: {name}")
            user.password_hash = password_hash

    # -- tokens ---------------------------------------------------------------

    def create_token(
        self,
        user_id: int,
        *,
        note: str = "",
        expires_in: float | None = None,
        scopes: list[str] | None = None,
        server_id: int | None = None,
        client_id: str | None = None,
        session: Session | None = None,
    ) -> tuple[str, APIToken]:
        """A new token for a user; returns the plain token (shown once) and its row."""
        token = new_token()
        row = APIToken(
            hashed=hash_token(token),
            prefix=token[:4],
            user_id=user_id,
            note=note,
            scopes=scopes or [],
            server_id=server_id,
            client_id=client_id,
            expires_at=utcnow() + timedelta(seconds=expires_in) if expires_in else None,
        )
        if session is not None:
            session.add(row)
            session.flush()
            return token, row
        with self.db.write() as own:
            own.add(row)
            own.flush()
        return token, row

    def lookup_token(self, token: str) -> APIToken | Service | None:
        """The live token row or service for a plain token, or None."""
        hashed = hash_token(token)
        if hashed in self.services_by_hash:
            return self.services_by_hash[hashed]
        with self.db.read() as session:
            row = session.scalar(select(APIToken).where(APIToken.hashed == hashed))
        if row is None or row.expired:
            return None
        return row

    def list_tokens(self, user_id: int) -> list[APIToken]:
        with self.db.read() as session:
            rows = session.scalars(select(APIToken).where(APIToken.user_id == user_id)).all()
            return [r for r in rows if not r.expired]

    def revoke_server_tokens(self, session: Session, server: Server) -> None:
        """Revoke the tokens issued to a server (at stop)."""
        session.execute(delete(APIToken).where(APIToken.server_id == server.id))


def _later(a: datetime | None, b: datetime) -> datetime:
    return b if a is None or b > a else a


def _new_user(name: str, admin: bool) -> User:
    return User(name=name, admin=admin, created=utcnow(), cookie_id=uuid.uuid4().hex)


def _state_filter(state: str):  # type: ignore[no-untyped-def]
    """SQL condition on a user's servers for ?state=active|ready|inactive."""
    from app.models import ServerState

    pending = Server.state.in_([ServerState.SPAWNING, ServerState.STOPPING])
    ready = (Server.state == ServerState.RUNNING) & Server.url.is_not(None)
    condition = {"active": pending | ready, "ready": ready}.get(state)
    if state == "inactive":
        return ~User.servers.any(pending | ready)
    if condition is None:
        raise Invalid("state must be one of active, ready, inactive")
    return User.servers.any(condition)


def init_app(app: Flask) -> None:
    """Create the UserService, with the configured service tokens."""
    from app.db import get_db

    services = get_settings(app).services
    app.extensions["flaskhub.users"] = UserService(get_db(app), services=services)


def get_users(app: Flask | None = None) -> UserService:
    """The UserService of the given or current app."""
    return (app or current_app).extensions["flaskhub.users"]
