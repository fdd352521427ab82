"""The tables: users, groups, servers and state, API tokens (hashed), OAuth clients and codes.

Tables hold data and derive from it; they call no services.
"""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """Now, timezone-aware UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A datetime stored naive in UTC and returned timezone-aware (SQLite keeps no zone)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None else None


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class ServerState(enum.StrEnum):
    """Where a server is in its life; the database is the truth about it."""

    STOPPED = "stopped"
    SPAWNING = "spawning"  # includes "proxy route being added"
    RUNNING = "running"
    STOPPING = "stopping"
    FAILED = "failed"  # the last spawn failed; failure_message keeps why


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True, index=True)
    admin: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_activity: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)
    # Changing it logs the user out of every browser (it is part of the session).
    cookie_id: Mapped[str] = mapped_column(String(64))
    password_hash: Mapped[str | None] = mapped_column(String(255), nullable=True)
    # What the user's files (home, volumes) are keyed by: a rename keeps them, and a
    # new user of a deleted user's name never gets them.
    storage_id: Mapped[str] = mapped_column(
        String(32), unique=True, default=lambda: uuid.uuid4().hex
    )
    # The provider's tokens and claims, encrypted (app.crypt); loaded only when asked for.
    encrypted_auth_state: Mapped[bytes | None] = mapped_column(
        LargeBinary, nullable=True, deferred=True
    )
    # When the auth state was last written (a login or a refresh): for auth_refresh_age.
    auth_refreshed: Mapped[datetime | None] = mapped_column(
        UTCDateTime, nullable=True, deferred=True
    )
    # The identity provider's account (issuer, sub) the name is bound to at its first
    # login through one: a later login of the name by another account is refused.
    provider_issuer: Mapped[str | None] = mapped_column(Text, nullable=True, deferred=True)
    provider_subject: Mapped[str | None] = mapped_column(Text, nullable=True, deferred=True)
    # JupyterHub 6's profile from the authenticator (name, initials, avatar_url, ...), for
    # JupyterLab to show; None until an authenticator gives one.
    user_info: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)

    servers: Mapped[list[Server]] = relationship(
        back_populates="user", cascade="all, delete-orphan", lazy="selectin"
    )
    # Loaded with the user (one query per batch of users) for the user model's "groups".
    groups: Mapped[list[Group]] = relationship(
        secondary="user_group_map", back_populates="users", lazy="selectin", order_by="Group.name"
    )
    # The roles given to the user directly (the user model's "roles"; scopes come from
    # app.roles, which adds the roles of the user's groups).
    roles: Mapped[list[Role]] = relationship(
        secondary="user_role_map", lazy="selectin", order_by="Role.name"
    )

    def __init__(self, **kwargs: Any) -> None:
        # A new user is in no group: say so, so its model can be built once detached.
        kwargs.setdefault("groups", [])
        kwargs.setdefault("roles", [])
        super().__init__(**kwargs)

    def server(self, name: str = "") -> Server | None:
        """The server of that name, if it has ever been started."""
        return next((s for s in self.servers if s.name == name), None)


def new_user(name: str, admin: bool) -> User:
    """A new user row: created now, with its own cookie id."""
    return User(name=name, admin=admin, created=utcnow(), cookie_id=uuid.uuid4().hex)


user_group_map = Table(
    "user_group_map",
    Base.metadata,
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("group_id", ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True, index=True),
)


class Group(Base):
    """A named set of users; `properties` is free-form data for deployments (JupyterHub's)."""

    __tablename__ = "groups"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True, index=True)
    properties: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    # Not loaded with the group: member lists can be long; ask for them (selectinload).
    users: Mapped[list[User]] = relationship(
        secondary=user_group_map, back_populates="groups", order_by=User.name
    )
    roles: Mapped[list[Role]] = relationship(
        secondary="group_role_map", lazy="selectin", order_by="Role.name"
    )


class ServerStatus:
    """What a server's state and URL say (for rows and for the plain views of lists)."""

    state: Any
    url: Any

    @property
    def pending(self) -> str | None:
        """'spawn' while spawning, 'stop' while stopping, else None."""
        return {ServerState.SPAWNING: "spawn", ServerState.STOPPING: "stop"}.get(
            ServerState(self.state)
        )

    @property
    def ready(self) -> bool:
        """Not pending and has a URL."""
        return self.pending is None and self.state == ServerState.RUNNING and bool(self.url)

    @property
    def active(self) -> bool:
        """Pending or ready."""
        return self.pending is not None or self.ready


class Server(ServerStatus, Base):
    __tablename__ = "servers"
    __table_args__ = (UniqueConstraint("user_id", "name", name="uq_servers_user_id_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255), default="", server_default="")
    state: Mapped[str] = mapped_column(
        String(16), default=ServerState.STOPPED, server_default="stopped", index=True
    )
    url: Mapped[str | None] = mapped_column(String(255), nullable=True)
    spawner_state: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    started: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_activity: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The X-JupyterHub-Version the server answered with ("unknown" if none).
    version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    failure_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    failure_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Why a server that was running stopped on its own (shown, never auto-restarted).
    stop_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    user_options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Where progress events were kept before migration 0016 (now ProgressEvent): never
    # loaded (deferred), kept so that the hub replicas of the version before go on
    # working beside this one during a rolling upgrade (README: Upgrading).
    legacy_progress_events: Mapped[list[Any]] = mapped_column(
        "progress_events", JSON, default=list, server_default="[]", deferred=True
    )
    # JupyterHub 6's name to show for a named server (any text; empty: its name).
    display_name: Mapped[str] = mapped_column(String(255), default="", server_default="")
    # The hub process (app.processes: host:pid:start) running its spawn or stop, while
    # it is spawning or stopping: if that process dies, the reconcile loop takes over.
    owner: Mapped[str | None] = mapped_column(String(255), nullable=True)

    user: Mapped[User] = relationship(back_populates="servers", lazy="joined")


class ProgressEvent(Base):
    """A step the spawner reported during a server's current (or last) spawn, for the
    progress stream, which any worker may serve: appended one INSERT each, read by
    streams as "seq > the last one sent"; a server's go when it starts again."""

    __tablename__ = "progress_events"
    # Never reused (AUTOINCREMENT), so a stream's last seq always means what it saw.
    __table_args__ = {"sqlite_autoincrement": True}

    seq: Mapped[int] = mapped_column(primary_key=True)
    server_id: Mapped[int] = mapped_column(ForeignKey("servers.id", ondelete="CASCADE"), index=True)
    # {"progress": int, "message": str, ...}
    event: Mapped[dict[str, Any]] = mapped_column(JSON)


class APIToken(Base):
    """A token; only its SHA-256 is stored. Owned by a user or by a service."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    hashed: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(8))
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=True, index=True
    )
    # The server this token was issued to (its JUPYTERHUB_API_TOKEN); revoked at stop.
    server_id: Mapped[int | None] = mapped_column(
        ForeignKey("servers.id", ondelete="CASCADE"), nullable=True
    )
    client_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    note: Mapped[str] = mapped_column(String(1023), default="", server_default="")
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_activity: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    user: Mapped[User | None] = relationship(lazy="joined")

    @property
    def expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= utcnow()


class OAuthClient(Base):
    """A user server's or a service's OAuth identity; its secret is their API token (hashed)."""

    __tablename__ = "oauth_clients"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    redirect_uri: Mapped[str] = mapped_column(String(1023))
    description: Mapped[str] = mapped_column(String(1023), default="")
    server_id: Mapped[int | None] = mapped_column(
        ForeignKey("servers.id", ondelete="CASCADE"), nullable=True
    )
    #: The service this client is (from the setting or the services table), if any.
    service_name: Mapped[str | None] = mapped_column(String(255), nullable=True)


class ServiceRow(Base):
    """A service created through the API (JupyterHub 5's dynamic services); those of the
    `services` setting are not rows."""

    __tablename__ = "services"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True, index=True)
    admin: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    url: Mapped[str] = mapped_column(String(1023), default="", server_default="")
    api_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True, index=True)
    oauth_client_id: Mapped[str | None] = mapped_column(String(255))
    oauth_redirect_uri: Mapped[str] = mapped_column(String(1023), default="", server_default="")
    oauth_client_allowed_scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    oauth_no_confirm: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    info: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    display: Mapped[bool] = mapped_column(Boolean, default=True, server_default="1")


class Share(Base):
    """Rights on one server (its `scopes`, each with the server's filter) that its owner
    gave one user or one group (JupyterHub 5's sharing)."""

    __tablename__ = "shares"

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=lambda: utcnow())
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    server_id: Mapped[int] = mapped_column(ForeignKey("servers.id", ondelete="CASCADE"), index=True)
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    group_id: Mapped[int | None] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), index=True
    )

    server: Mapped[Server] = relationship(lazy="joined")
    user: Mapped[User | None] = relationship(foreign_keys=[user_id], lazy="joined")
    group: Mapped[Group | None] = relationship(lazy="joined")


class ShareCode(Base):
    """A code (hashed) its holder exchanges for a Share of one server, until it expires."""

    __tablename__ = "share_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=lambda: utcnow())
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    server_id: Mapped[int] = mapped_column(ForeignKey("servers.id", ondelete="CASCADE"))
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    hashed: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    exchange_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_exchanged_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    server: Mapped[Server] = relationship(lazy="joined")


class OAuthCode(Base):
    """A one-time authorization code (hashed), valid for a few minutes."""

    __tablename__ = "oauth_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    hashed: Mapped[str] = mapped_column(String(64), unique=True)
    client_id: Mapped[str] = mapped_column(
        ForeignKey("oauth_clients.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    redirect_uri: Mapped[str] = mapped_column(String(1023))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Lease(Base):
    """Who runs a singleton loop (the reconcile loop) until when; shared by all workers."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(255))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class AuthGeneration(Base):
    """One row whose value the database's triggers (migration 0017) move with every change
    that decides who a credential is or what it may do: identities kept by a process
    (app.identities) hold while it has not moved."""

    __tablename__ = "auth_generation"

    id: Mapped[int] = mapped_column(primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, server_default="0")


class Heartbeat(Base):
    """When a hub process last said it is alive, by the database's clock (app/heartbeats.py)."""

    __tablename__ = "heartbeats"

    process: Mapped[str] = mapped_column(String(255), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class LoginFailure(Base):
    """Failed logins for one name or one address since first_at (throttling)."""

    __tablename__ = "login_failures"

    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)
    first_at: Mapped[datetime] = mapped_column(UTCDateTime)


user_role_map = Table(
    "user_role_map",
    Base.metadata,
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("role_id", ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True, index=True),
)
group_role_map = Table(
    "group_role_map",
    Base.metadata,
    Column("group_id", ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True),
    Column("role_id", ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True, index=True),
)
# Services live in the settings, not in a table: they are named.
service_role_map = Table(
    "service_role_map",
    Base.metadata,
    Column("service", String(255), primary_key=True),
    Column("role_id", ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True, index=True),
)


class Role(Base):
    """A named set of scopes granted to users, groups and services (JupyterHub's roles).

    The default roles (user, admin, server, token) are not rows, except a `user`
    role whose scopes `load_roles` redefined.
    """

    __tablename__ = "roles"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True, index=True)
    description: Mapped[str] = mapped_column(Text, default="", server_default="")
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
