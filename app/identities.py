"""Domain: the Identity of an API token, kept by a process between requests for as long as
the database says that nothing deciding it has changed.

Resolving a user's token reads the token with its owner, then the owner's roles and
shares, and expands their scopes. Migration 0017's triggers move the one value of
auth_generation, in the same transaction, with every change that decides who a
credential is or what it may do (a token revoked, a user deleted, renamed or no longer
admin, a role, group, membership, share or service changed), whichever process or
replica makes it. So a request reads that value (one read) and uses the Identity it
kept only if it was made at the same value; any other value drops what was kept.

The value is read before the reads that make an Identity: a change committed in
between makes the kept Identity newer than its value says, never older, and the next
request reads the new value and makes it again. A request that read the value before
a change committed acts as it would have without keeping anything: as of that read.
Plain Python, no Flask request objects.
"""

from __future__ import annotations

from typing import Protocol

from flask import Flask, current_app

from app.db import Database
from app.identity import ANONYMOUS, Grants, Identity
from app.models import User
from app.tokens import Service, TokenService, hash_token

_GENERATION = "SELECT value FROM auth_generation WHERE id = 1"
# More tokens than this in use at one value of the generation: start again (memory).
MAX_KEPT = 10_000


class Rechecks(Protocol):
    """What re-checks a login older than auth_refresh_age (app.auth.state.AuthStates)."""

    def recheck(self, user: User) -> User | None:
        """The user as the provider vouches for them now, or None."""
        ...

    def forget(self) -> None:
        """Forget which logins were found fresh (the database changed)."""
        ...


class Identities:
    """The Identities of API tokens, kept while the database's auth generation stays."""

    def __init__(
        self, db: Database, tokens: TokenService, grants: Grants, rechecks: Rechecks
    ) -> None:
        self.db = db
        self.tokens = tokens
        self.grants = grants
        self.rechecks = rechecks
        # The newest generation read, and {token hash: the Identity made at it}.
        self._generation = -1
        self._kept: dict[str, Identity] = {}

    def of_token(self, token: str) -> Identity:
        """Who a token is (ANONYMOUS for an unknown, expired or no longer vouched one)."""
        hashed = hash_token(token)
        if hashed in self.tokens.services:
            # A service of the settings: known without the database. Made anew (its
            # scopes' group filters are answered from memberships as they are now).
            return Identity(service=self.tokens.services[hashed], grants=self.grants)
        generation = self.generation()
        identity = self._kept.get(hashed) if generation == self._generation else None
        if identity is None:
            identity = self._made(hashed)
            # A token unknown now may be created later (no trigger for that): never kept.
            if identity.authenticated and generation == self._generation:
                self._keep(hashed, identity)
        elif identity.token is not None:
            self.tokens.note_use(identity.token)
        return self._checked(hashed, identity)

    def generation(self) -> int | None:
        """The database's auth generation now (None: keep nothing); a newer one than seen
        before drops every Identity kept."""
        value = self.db.value(_GENERATION)
        # Only forward: a greenlet that read an older value must not undo a newer one.
        if value is not None and value > self._generation:
            self._generation = value
            self._kept = {}
            # A login another process found no longer vouched for moved it too.
            self.rechecks.forget()
        return value

    def _keep(self, hashed: str, identity: Identity) -> None:
        if len(self._kept) >= MAX_KEPT:
            self._kept = {}
        self._kept[hashed] = identity

    def _made(self, hashed: str) -> Identity:
        """The Identity of a token hash, read from the database, its scopes resolved."""
        found = self.tokens.find(hashed)
        if isinstance(found, Service):
            identity = Identity(service=found, grants=self.grants)
        elif found is not None and found.user is not None:
            identity = Identity(user=found.user, token=found, grants=self.grants)
        else:
            return ANONYMOUS
        identity.scopes  # noqa: B018 -- read now, after the generation, not at a later use
        return identity

    def _checked(self, hashed: str, identity: Identity) -> Identity:
        """The identity as of now: an expired token, or a login the provider no longer
        vouches for (auth_refresh_age), is anonymous."""
        token = identity.token
        if token is not None and token.expired:
            self._kept.pop(hashed, None)
            return ANONYMOUS
        if identity.user is None or token is None:
            return identity
        user = self.rechecks.recheck(identity.user)
        if user is identity.user:
            return identity
        # Refreshed (or refused): made again from what the refresh wrote.
        self._kept.pop(hashed, None)
        return Identity(user=user, token=token, grants=self.grants) if user else ANONYMOUS


def get_identities(app: Flask | None = None) -> Identities:
    """The Identities of the given or current app."""
    return (app or current_app).extensions["flaskhub.identities"]
