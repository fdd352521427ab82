"""Domain: the hub's own passwords (authenticator = "password"): change and reset.

A user changes their own password by giving the current one; an admin (API
scope admin:users, or `flaskhub user set-password`) resets anyone's without
it. Either way the new password is argon2-hashed off the event loop, and the
user's logins in every browser end (the caller logs the changer in again).
"""

from __future__ import annotations

import logging

from app.auth.authenticators import hash_password, in_threadpool, verify_password
from app.config import Settings
from app.logins import LoginThrottle, login_keys
from app.outcomes import Forbidden, Invalid, NotFound
from app.users import UserService

log = logging.getLogger(__name__)

MIN_PASSWORD_LENGTH = 8
# argon2 takes any length; a megabyte of password would only cost the hub time.
MAX_PASSWORD_LENGTH = 1024


def check_new_password(password: object) -> str:
    """The new password, or Invalid saying what a password must be."""
    if not isinstance(password, str) or not password:
        raise Invalid("Send the new password as a string.")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise Invalid(f"The password must have at least {MIN_PASSWORD_LENGTH} characters.")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise Invalid(f"The password must have at most {MAX_PASSWORD_LENGTH} characters.")
    return password


class Passwords:
    """Change and reset passwords of the `password` authenticator's accounts."""

    def __init__(self, users: UserService, settings: Settings, throttle: LoginThrottle) -> None:
        self.users = users
        self.throttle = throttle
        self.enabled = settings.authenticator == "password"

    def change(self, name: str, current: object, new: object, address: str | None) -> None:
        """The user's own change: Forbidden when `current` is wrong (counted as a failed
        login of the name and the address: TooManyFailures after login_failure_limit),
        Invalid for a bad new one."""
        self._check_enabled()
        user = self.users.get(name)
        if user is None:
            raise NotFound(f"No such user: {name}")
        new = check_new_password(new)
        # A stolen cookie must not become a way to guess the password without limit.
        keys = login_keys(name, address)
        self.throttle.check(keys)
        ok = isinstance(current, str) and bool(user.password_hash)
        if not ok or not in_threadpool(verify_password, user.password_hash, current):
            self.throttle.failed(keys)
            log.warning("Refused a password change of %s: wrong current password", name)
            raise Forbidden("The current password is wrong: your password is unchanged.")
        self._store(name, new)

    def reset(self, name: str, new: object) -> None:
        """An admin sets the password (no current one needed); NotFound, Invalid."""
        self._check_enabled()
        self._store(name, check_new_password(new))

    def _store(self, name: str, new: str) -> None:
        self.users.set_password_hash(name, in_threadpool(hash_password, new))
        self.users.end_sessions(name)
        log.info("Password of %s changed; their logins elsewhere ended", name)

    def _check_enabled(self) -> None:
        if not self.enabled:
            raise Invalid(
                "This hub has no passwords of its own (authenticator is not 'password'): "
                "change yours where you sign in."
            )
