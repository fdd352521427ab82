"""Domain: throttling of failed logins, per name and per address, shared by all workers.

After `login_failure_limit` failures within `login_failure_window` seconds for a
name or from an address, logins for it are refused until the window ends, the
right password included; the answer is the same whether the name exists or not.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Iterable
from datetime import timedelta

from flask import Flask, current_app
from sqlalchemy import delete
from sqlalchemy.orm import Session

from app.config import Settings, get_settings
from app.db import Database, get_db
from app.forwarded import parse_address
from app.models import LoginFailure, utcnow
from app.outcomes import Invalid, TooManyFailures
from app.users import normalize_username

# Most IPv6 clients hold a whole /64: counted per address, each would have 2**64 tries.
IPV6_PREFIX = 64
MAX_KEY_NAME = 256


def login_keys(name: str, address: str | None) -> list[str]:
    """The throttle's keys of a login: the name as the hub knows it, and the address."""
    try:
        normal = normalize_username(name)
    except Invalid:
        normal = name.strip().lower()[:MAX_KEY_NAME]  # never logs in; still counted
    return [f"name:{normal}", f"addr:{_address_key(address or '')}"]


def _address_key(address: str) -> str:
    """The address; an IPv6 one by its /64, an IPv4-mapped one as the IPv4 address."""
    parsed = parse_address(address)
    if parsed is None:
        return address[:MAX_KEY_NAME]
    if parsed.version == 6:
        return str(ipaddress.IPv6Network((parsed, IPV6_PREFIX), strict=False))
    return str(parsed)


class LoginThrottle:
    """Counts failed logins by key ("name:<name>", "addr:<address>") in a window."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.limit = settings.login_failure_limit
        self.window = timedelta(seconds=settings.login_failure_window)

    def retry_after(self, keys: Iterable[str]) -> int | None:
        """Seconds until a login for these keys may be tried again, or None (it may now)."""
        if not self.limit:
            return None
        now = utcnow()
        with self.db.read() as session:
            rows = [session.get(LoginFailure, key) for key in keys]
        ends = [
            row.first_at + self.window
            for row in rows
            if row is not None and row.failures >= self.limit and row.first_at + self.window > now
        ]
        return math.ceil((max(ends) - now).total_seconds()) if ends else None

    def check(self, keys: Iterable[str]) -> None:
        """TooManyFailures while a login for these keys may not be tried."""
        wait = self.retry_after(keys)
        if wait is not None:
            raise TooManyFailures(f"Too many failed logins. Try again in {wait} seconds.", wait)

    def failed(self, keys: Iterable[str]) -> None:
        """Count one failure for each key (a window that ended starts again).

        Rows of windows that ended are deleted here, so many names tried once each
        (from many addresses) leave no more rows than one window's worth.
        """
        if not self.limit:
            return
        now = utcnow()
        with self.db.write() as session:
            session.execute(delete(LoginFailure).where(LoginFailure.first_at <= now - self.window))
            for key in keys:
                row = session.get(LoginFailure, key)
                if row is None:
                    session.add(LoginFailure(key=key, failures=1, first_at=now))
                else:
                    row.failures += 1


def forget_failures(session: Session, key: str) -> None:
    """Forget the failures of a key (the name that just logged in), in the caller's write."""
    session.execute(delete(LoginFailure).where(LoginFailure.key == key))


def init_app(app: Flask) -> None:
    """Create the LoginThrottle."""
    app.extensions["flaskhub.logins"] = LoginThrottle(get_db(app), get_settings(app))


def get_throttle(app: Flask | None = None) -> LoginThrottle:
    """The LoginThrottle of the given or current app."""
    throttle: LoginThrottle = (app or current_app).extensions["flaskhub.logins"]
    return throttle
