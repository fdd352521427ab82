"""Domain: auth state, what the identity provider handed over at login (tokens, claims).

Kept encrypted in users.encrypted_auth_state (app.crypt) when `crypt_key` is set,
and not at all otherwise. Before a spawn, a login older than `auth_refresh_age`
is refreshed through the authenticator (refresh token, else userinfo); when the
provider no longer vouches for it, LoginExpired asks the person to log in again.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from app.auth.access import admit
from app.auth.authenticators import Authenticator
from app.config import Settings
from app.crypt import CryptKeeper, DecryptError
from app.db import Database
from app.models import User, utcnow
from app.outcomes import LoginExpired, NotFound
from app.users import UserService

log = logging.getLogger(__name__)


class AuthStates:
    """Read, write and refresh users' auth state; does nothing without a crypt key."""

    def __init__(
        self, db: Database, settings: Settings, authenticator: Authenticator, users: UserService
    ) -> None:
        self.db = db
        self.settings = settings
        self.authenticator = authenticator
        self.users = users
        self.keeper = CryptKeeper.from_setting(settings.crypt_key)

    @property
    def enabled(self) -> bool:
        return self.keeper is not None

    def load(self, name: str) -> dict[str, Any] | None:
        """The user's auth state, or None (none kept, or no key opens it any more)."""
        return self._read(name)[0]

    def save(self, name: str, state: dict[str, Any] | None) -> None:
        """Replace the user's auth state (None clears it); NotFound for an unknown user."""
        if self.keeper is None:
            return
        blob = self.keeper.encrypt(state) if state is not None else None
        with self.db.write() as session:
            user = session.scalar(select(User).where(User.name == name))
            if user is None:
                raise NotFound(f"No such user: {name}")
            user.encrypted_auth_state = blob
            user.auth_refreshed = utcnow()

    def for_spawn(self, name: str) -> dict[str, Any] | None:
        """The auth state to start a server with, refreshed first when older than
        auth_refresh_age; LoginExpired (or Forbidden) when the provider no longer vouches."""
        state, refreshed = self._read(name)
        age = self.settings.auth_refresh_age
        if state is None or not age:
            return state
        if refreshed is not None and utcnow() - refreshed < timedelta(seconds=age):
            return state
        result = self.authenticator.refresh(name, state)
        if result is None:
            return state  # nothing this authenticator can refresh
        if result.name != name:
            raise LoginExpired(f"The identity provider now names {name} {result.name}.")
        admit(self.users, self.settings, result)
        self.save(name, result.auth_state)
        log.info("Refreshed the auth state of %s", name)
        return result.auth_state

    def _read(self, name: str) -> tuple[dict[str, Any] | None, datetime | None]:
        if self.keeper is None:
            return None, None
        with self.db.read() as session:
            query = select(User.encrypted_auth_state, User.auth_refreshed).where(User.name == name)
            row = session.execute(query).one_or_none()
        if row is None or row[0] is None:
            return None, None
        try:
            return self.keeper.decrypt(row[0]), row[1]
        except DecryptError as e:
            log.warning("Auth state of %s cannot be read (%s): it is ignored", name, e)
            return None, None
