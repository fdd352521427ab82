"""Domain: giving a user a system account the hub made and kept, with its files.

Accounts the hub makes carry their user's stable id (app/spawners/accounts.py). When
the hub's database is lost or replaced, returning users get new ids, so their
accounts are refused to them. An admin binds such an account to its user again
(`flaskhub user bind-account`, POST /hub/api/users/<name>/system-account): its
marker becomes the user's id. Plain Python, no Flask request objects.
"""

from __future__ import annotations

import logging
import pwd
from dataclasses import dataclass

from flask import Flask, current_app
from sqlalchemy import select

from app.config import Settings, get_settings
from app.db import Database, get_db
from app.models import User
from app.outcomes import Conflict, DomainError, Invalid, NotFound, Outcome
from app.spawners import accounts, spawner_class
from app.spawners.base import SpawnerError
from app.spawners.local import LocalProcessSpawner

log = logging.getLogger(__name__)


class BindFailed(DomainError):
    """The account could not be changed (usermod failed)."""

    outcome = Outcome.FAILED


@dataclass(frozen=True)
class Binding:
    """A user and the system account that now runs their servers."""

    name: str
    system_account: str
    uid: int
    home: str
    changed: bool


class SystemAccounts:
    """Binding kept system accounts to users, over the hub's database and settings."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings

    def bind(self, username: str, account: str, by: str) -> Binding:
        """Give user `username` the kept account `account`, with its files; `by` is who asks.

        Raises Invalid (servers do not run as accounts here; no such account; root, one of
        the machine's own or one the hub did not make), NotFound (no such user), Conflict
        (another user's account, or the user has another), BindFailed (usermod failed).
        """
        settings = self.settings
        _check_servers_run_as_accounts(settings)
        user = _user(self.db, username)
        try:
            entry = accounts.bindable(account, settings.system_users_allowed)
        except SpawnerError as e:
            raise Invalid(str(e)) from None
        owner = accounts.owner_of(entry)
        changed = owner != user.storage_id
        if changed:
            self._give(entry, owner, user, by)
        return Binding(user.name, entry.pw_name, entry.pw_uid, entry.pw_dir, changed)

    def _give(self, entry: pwd.struct_passwd, owner: str | None, user: User, by: str) -> None:
        """Make the account the user's (its marker their stable id), if no one else has it."""
        _check_free(self.db, entry, owner, user)
        try:
            accounts.bind(entry.pw_name, user.storage_id)
        except SpawnerError as e:
            raise BindFailed(str(e)) from None
        log.warning(
            "%s bound system account %s (uid %s, home %s) to user %s; it was made for stable id %s",
            by,
            entry.pw_name,
            entry.pw_uid,
            entry.pw_dir,
            user.name,
            owner,
        )


def _check_servers_run_as_accounts(settings: Settings) -> None:
    cls = spawner_class(settings.spawner)
    if not issubclass(cls, LocalProcessSpawner) or cls.shares_hub_account():
        raise Invalid(
            f"Servers here do not run as system accounts (spawner {settings.spawner!r}): "
            'they do with spawner = "local" and the hub running as root (run '
            "`flaskhub user bind-account` as root)."
        )


def _user(db: Database, name: str) -> User:
    with db.read() as session:
        user = session.scalar(select(User).where(User.name == name))
    if user is None:
        raise NotFound(f"No such user: {name}")
    return user


def _check_free(db: Database, entry: pwd.struct_passwd, owner: str | None, user: User) -> None:
    """Conflict when the account is another existing user's, or the user has another."""
    with db.read() as session:
        holder = session.scalar(select(User.name).where(User.storage_id == owner))
    if holder is not None:
        raise Conflict(
            f"System account {entry.pw_name!r} belongs to user {holder}: remove {holder} "
            "first, or leave it theirs."
        )
    current = accounts.bound_to(user.storage_id)
    if current is not None:
        raise Conflict(
            f"User {user.name} already has system account {current!r}: remove it "
            f"(userdel --remove {current}) before binding {entry.pw_name!r}."
        )


def init_app(app: Flask) -> None:
    """Create the SystemAccounts service."""
    app.extensions["flaskhub.system_accounts"] = SystemAccounts(get_db(app), get_settings(app))


def get_system_accounts(app: Flask | None = None) -> SystemAccounts:
    """The SystemAccounts of the given or current app."""
    return (app or current_app).extensions["flaskhub.system_accounts"]
