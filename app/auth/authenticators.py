"""Authenticators: who someone is. Chosen by the `authenticator` setting.

An Authenticator checks a name and password from the login form and returns
an AuthResult (the normalised username, the groups the provider says the user
is in, the provider's tokens and claims) on success, None on failure. It never
raises for bad credentials; a name that is not a valid username raises Invalid
(shown on the form). Whether that person may log in is decided afterwards, the
same way for every authenticator (app.auth.access).
"""

from __future__ import annotations

import functools
import hmac
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import gevent

from app.config import Settings
from app.users import UserService, normalize_username

if TYPE_CHECKING:
    from argon2 import PasswordHasher


@functools.cache
def _hasher() -> PasswordHasher:
    """argon2's hasher, loaded at the first password (hubs without passwords never need it)."""
    from argon2 import PasswordHasher

    return PasswordHasher()


def hash_password(password: str) -> str:
    """argon2 hash of a password."""
    return _hasher().hash(password)


def in_threadpool(fn: Any, *args: Any) -> Any:
    """fn(*args) in gevent's threadpool."""
    # argon2 holds the CPU for ~0.1-1 s: off the event loop, into gevent's threadpool.
    return gevent.get_hub().threadpool.apply(fn, args)


@dataclass(frozen=True)
class AuthResult:
    """Who the authenticator says someone is."""

    #: The normalised, validated username.
    name: str
    #: The provider's groups of the user; None when the authenticator knows no groups
    #: (then admin_groups can neither grant nor take away admin).
    groups: frozenset[str] | None = None
    #: What the provider handed over (tokens, claims), kept encrypted as auth state.
    auth_state: dict[str, Any] | None = field(default=None, compare=False, repr=False)
    #: The provider's account, (issuer, sub): the name is bound to it at the first login
    #: (app.auth.access). None for authenticators without one (dummy, password, LDAP).
    subject: tuple[str, str] | None = None
    #: JupyterHub 6's profile (name, display_name, initials, avatar_url, color), shown as
    #: the user model's user_info; None keeps what the user has.
    user_info: dict[str, Any] | None = field(default=None, compare=False)


class Authenticator:
    """Base class: authenticate(name, password) -> AuthResult, or None for bad credentials."""

    #: People log in at an identity provider (a RedirectAuthenticator), not on the form.
    redirects = False

    def __init__(self, settings: Settings, users: UserService) -> None:
        self.settings = settings
        self.users = users

    def authenticate(self, name: str, password: str) -> AuthResult | None:
        raise NotImplementedError

    def refresh(self, name: str, auth_state: dict[str, Any]) -> AuthResult | None:
        """Who a stored login is now (new tokens and claims), None when there is nothing to
        refresh; raises LoginExpired when the provider no longer vouches for it."""
        return None

    def refreshes_without_state(self) -> bool:
        """refresh() can say who someone is now without the auth state kept at login (LDAP
        with a service account); others need that state (crypt_key)."""
        return False


class DummyAuthenticator(Authenticator):
    """Any name; with dummy_password set, only that password."""

    def authenticate(self, name: str, password: str) -> AuthResult | None:
        username = normalize_username(name)
        expected = self.settings.dummy_password
        if expected and not hmac.compare_digest(expected.encode(), password.encode()):
            return None
        return AuthResult(username)


class PasswordAuthenticator(Authenticator):
    """Accounts with argon2-hashed passwords (`flaskhub user add NAME`)."""

    def authenticate(self, name: str, password: str) -> AuthResult | None:
        username = normalize_username(name)
        user = self.users.get(username)
        if user is None or not user.password_hash:
            # Same cost as a real check, so response times do not reveal accounts.
            in_threadpool(verify_password, _dummy_hash(), password)
            return None
        ok = in_threadpool(verify_password, user.password_hash, password)
        return AuthResult(username) if ok else None


def verify_password(password_hash: str, password: str) -> bool:
    """Whether the password matches the argon2 hash (False for a malformed hash)."""
    from argon2.exceptions import InvalidHashError, VerificationError

    try:
        return _hasher().verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@functools.cache
def _dummy_hash() -> str:
    """A hash no password matches, to check unknown names against."""
    return hash_password("not a password anyone has")
