"""Domain: auth state, what the identity provider handed over at login (tokens, claims).

Kept encrypted in users.encrypted_auth_state (app.crypt) when `crypt_key` is set,
and not at all otherwise. Before a spawn, a login older than `auth_refresh_age`
is refreshed through the authenticator (refresh token, else userinfo); when the
provider no longer vouches for it, LoginExpired asks the person to log in again.

Every request of a user's cookie or token re-checks the same way once the login
is older than `auth_refresh_age` (`recheck`): the groups are read again, so a
user out of `admin_groups` (or `allowed_groups`) loses admin (or the hub) at
their next request, whichever credential it carries.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from flask import Flask, current_app
from sqlalchemy import bindparam, or_, select, update

from app.auth.access import admit
from app.auth.authenticators import Authenticator, AuthResult
from app.config import Settings
from app.crypt import CryptKeeper, DecryptError
from app.db import Database, rows_changed
from app.logins import forget_failures
from app.models import User, utcnow
from app.outcomes import DomainError, LoginExpired, NotFound, Unavailable
from app.users import UserService

_REFRESHED = select(User.auth_refreshed, User.encrypted_auth_state.is_not(None)).where(
    User.id == bindparam("user_id")
)
# Of the requests that find a login stale at once (in any worker), one refreshes it.
_CLAIM = (
    update(User)
    .where(User.id == bindparam("user_id"))
    .where(or_(User.auth_refreshed.is_(None), User.auth_refreshed < bindparam("cutoff")))
    .values(auth_refreshed=bindparam("now"))
)

log = logging.getLogger(__name__)


class AuthStates:
    """Read, write and refresh users' auth state (nothing without a crypt key), and record
    logins, which keep it."""

    def __init__(
        self, db: Database, settings: Settings, authenticator: Authenticator, users: UserService
    ) -> None:
        self.db = db
        self.settings = settings
        self.authenticator = authenticator
        self.users = users
        self.keeper = CryptKeeper.from_setting(settings.crypt_key)
        # user id -> until when their login is known fresh (no need to ask the database).
        self._fresh_until: dict[int, datetime] = {}

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
        with self.db.write() as session:
            user = session.scalar(select(User).where(User.name == name))
            if user is None:
                raise NotFound(f"No such user: {name}")
            self._keep(user, state)

    def log_in(self, result: AuthResult, forget: str | None = None) -> User:
        """Record a login in one write: the failures of the `forget` key forgotten, the
        user admitted (app.auth.access.admit; Forbidden), their auth state kept and their
        activity noted. The user, loaded (servers, groups, roles)."""
        with self.db.write() as session:
            if forget is not None:
                forget_failures(session, forget)
            user = admit(session, self.settings, result)
            if result.auth_state is not None:
                self._keep(user, result.auth_state)
            user.last_activity = utcnow()
        return user

    def _keep(self, user: User, state: dict[str, Any] | None) -> None:
        """Set a user's auth state, in the session that loaded them (nothing without a key)."""
        if self.keeper is None:
            return
        user.encrypted_auth_state = self.keeper.encrypt(state) if state is not None else None
        user.auth_refreshed = utcnow()

    def for_spawn(
        self, name: str, may_refresh: Callable[[], bool] = lambda: True
    ) -> dict[str, Any] | None:
        """The auth state to start a server with, refreshed first when older than
        auth_refresh_age (unless may_refresh() says no: then as it is); LoginExpired (or
        Forbidden) when the provider no longer vouches."""
        state, refreshed = self._read(name)
        age = self.settings.auth_refresh_age
        if state is None or not age:
            return state
        if refreshed is not None and utcnow() - refreshed < timedelta(seconds=age):
            return state
        return self._refresh(name, state) if may_refresh() else state

    def recheck(self, user: User) -> User | None:
        """The user of a request's cookie or token as the provider vouches for them now:
        past auth_refresh_age the login is refreshed and admit() re-reads the groups
        (admin too). None when the provider no longer vouches for them, or the settings
        no longer admit them: their cookies end, and the request is anonymous."""
        age = self.settings.auth_refresh_age
        stateless = self.authenticator.refreshes_without_state()
        if not age or not self._refreshes or (self.keeper is None and not stateless):
            return user
        now = utcnow()
        if now < self._fresh_until.get(user.id, now):
            return user
        with self.db.read() as session:
            row = session.execute(_REFRESHED, {"user_id": user.id}).one_or_none()
        if row is None or not (row[1] or stateless):
            # No auth state kept (a login from before crypt_key): nothing to ask, for now.
            self._fresh_until[user.id] = now + timedelta(seconds=age)
            return user
        if row[0] is not None and now - row[0] < timedelta(seconds=age):
            self._fresh_until[user.id] = row[0] + timedelta(seconds=age)
            return user
        return self._refresh_request(user, now, timedelta(seconds=age))

    def forget(self) -> None:
        """Ask the database again at each user's next request: another process may have
        found a login no longer vouched for (it unclaimed it and ended its cookies)."""
        self._fresh_until.clear()

    @property
    def _refreshes(self) -> bool:
        return type(self.authenticator).refresh is not Authenticator.refresh

    def _refresh_request(self, user: User, now: datetime, age: timedelta) -> User | None:
        with self.db.write() as session:
            claimed = rows_changed(
                session.execute(_CLAIM, {"user_id": user.id, "cutoff": now - age, "now": now})
            )
        if not claimed:
            return user  # another request is refreshing it right now
        state = self.load(user.name)
        try:
            if state is not None or self.authenticator.refreshes_without_state():
                self._refresh(user.name, state or {})
        except Unavailable as e:
            # Not known to be wrong: kept as it was until the next try, auth_refresh_age on.
            log.warning("Could not refresh the login of %s: %s", user.name, e)
        except DomainError as e:  # LoginExpired, Forbidden, a name no longer valid
            log.warning("Login of %s no longer vouched for (%s): its cookies end", user.name, e)
            self._fresh_until.pop(user.id, None)
            self._unclaim(user.id)
            self.users.end_sessions(user.name)
            return None
        self._fresh_until[user.id] = now + age
        return self.users.get(user.name) or user

    def _unclaim(self, user_id: int) -> None:
        """Stale again: the next request asks the provider again (and is refused again)."""
        with self.db.write() as session:
            session.execute(update(User).where(User.id == user_id).values(auth_refreshed=None))

    def _refresh(self, name: str, state: dict[str, Any]) -> dict[str, Any] | None:
        """Refresh through the authenticator, admit again (admin brought up to date) and keep
        the new state; LoginExpired or Forbidden when the provider or settings refuse."""
        result = self.authenticator.refresh(name, state)
        if result is None:
            return state  # nothing this authenticator can refresh
        if result.name != name:
            raise LoginExpired(f"The identity provider now names {name} {result.name}.")
        with self.db.write() as session:
            self._keep(admit(session, self.settings, result), result.auth_state)
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


def get_auth_states(app: Flask | None = None) -> AuthStates:
    """The AuthStates of the given or current app."""
    return (app or current_app).extensions["flaskhub.auth_states"]
