"""Domain: JupyterHub 6's server edits: create a named server without starting it, and
change a stopped server's name, display name or user options.

Plain Python over the database. Refusals are DomainErrors: NotFound (no such user or
server), Conflict (the name is taken), Invalid (named servers off, a bad name, the
limit, an active server).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, selectinload

from app.config import Settings
from app.db import Database
from app.models import OAuthClient, Server, ServerState, User
from app.outcomes import Conflict, Invalid, NotFound
from app.servers.names import check_server_name
from app.servers.spawning import check_named_server_limit
from app.spawn_options import checked_options, option_fields

# JupyterHub's column is 255 characters; a longer name to show is a mistake.
MAX_DISPLAY_NAME = 255


@dataclass(frozen=True)
class ServerEdit:
    """What a PATCH changes; None leaves a field as it is."""

    name: str | None = None
    display_name: str | None = None
    user_options: dict[str, Any] | None = None


class ServerEdits:
    """Create and edit servers that are not running."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings

    def create(
        self, user_name: str, server_name: str, display_name: str, user_options: dict[str, Any]
    ) -> int:
        """A new stopped named server (PUT); its id."""
        if not server_name:
            raise Conflict(f"User {user_name} already has a default server")
        with self.db.write() as session:
            user = _user(session, user_name)
            if user.server(server_name) is not None:
                raise Conflict(f"User {user_name} already has server {server_name}")
            self._check_named(user, server_name, display_name, count=True)
            server = Server(
                user=user,
                name=server_name,
                display_name=display_name or server_name,
                user_options=self._checked(user_options),
            )
            session.add(server)
            session.flush()
            return server.id

    def edit(self, user_name: str, server_name: str, edit: ServerEdit) -> int:
        """Rename a stopped server, or set its display name or user options (PATCH); its id."""
        with self.db.write() as session:
            user = _user(session, user_name)
            if edit.name is not None:
                # Renaming the default server makes a new named one (JupyterHub's count).
                self._check_named(user, edit.name, edit.display_name, count=not server_name)
            elif edit.display_name is not None:
                _check_display_name(edit.display_name)
            server = user.server(server_name)
            if server is None:
                raise NotFound(f"User {user_name} has no such server {server_name!r}")
            if server.state in (ServerState.SPAWNING, ServerState.RUNNING, ServerState.STOPPING):
                raise Invalid(
                    f"{user_name}'s server {server_name!r} is active. "
                    "Please stop it before modifying it."
                )
            if edit.name is not None and edit.name != server_name:
                if user.server(edit.name) is not None:
                    raise Conflict(f"User {user_name} already has server {edit.name!r}")
                _rename(session, server, edit.name)
            if edit.user_options is not None:
                server.user_options = self._checked(edit.user_options)
            if edit.display_name:
                server.display_name = edit.display_name
            elif edit.name is not None:
                server.display_name = edit.name
            return server.id

    def _checked(self, user_options: dict[str, Any]) -> dict[str, Any]:
        """The options as a start would take them (declared fields checked): a bad one is
        refused now, not at the next start."""
        return checked_options(option_fields(self.settings.spawn_options), user_options)

    def _check_named(
        self, user: User, server_name: str, display_name: str | None, *, count: bool
    ) -> None:
        if not self.settings.allow_named_servers:
            raise Invalid("Named servers are not enabled.")
        check_server_name(server_name)
        if display_name is not None:
            _check_display_name(display_name)
        if count:
            check_named_server_limit(self.settings, user)


def _rename(session: Session, server: Server, new_name: str) -> None:
    """The row takes the new name; the OAuth client named after the old one goes (the
    next start registers one under the new name; a stopped server has no tokens)."""
    session.execute(delete(OAuthClient).where(OAuthClient.server_id == server.id))
    server.name = new_name


def _check_display_name(display_name: str) -> None:
    if len(display_name) > MAX_DISPLAY_NAME:
        raise Invalid(f"display_name must be at most {MAX_DISPLAY_NAME} characters")
    if any(not ch.isprintable() for ch in display_name):
        raise Invalid("display_name must be printable text (no control characters)")


def _user(session: Session, name: str) -> User:
    query = select(User).where(User.name == name).options(selectinload(User.servers))
    user = session.scalar(query)
    if user is None:
        raise NotFound(f"No such user: {name}")
    return user
