"""Domain: API tokens, stored hashed, and the service tokens of the settings.

A token's public id is ``a<row id>``; the token itself exists only in the
answer that created it. Plain Python, no Flask request objects.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

from flask import Flask, current_app
from sqlalchemy import Row, Table, bindparam, delete, insert, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from app.db import Database, DatabaseUnavailable, Loader, get_db
from app.models import APIToken, OAuthClient, ServiceRow, User, utcnow
from app.outcomes import SHOWN_CHARS, NotFound
from app.users import ACTIVITY_RESOLUTION, USER_SEEN

# Looking a token up loads its owner's row with it, and nothing more: what the request
# needs of the user (servers, groups) it reads itself, and an accidental use of the
# owner's collections fails loudly instead of querying a detached object. Asked on every
# request with a token: one Core statement, no Session.
_TOKEN, _OWNER = Loader(APIToken), Loader(User)
_BY_HASH = (
    select(*_TOKEN.columns, *_OWNER.columns)
    .outerjoin(User, User.id == APIToken.user_id)
    .where(APIToken.hashed == bindparam("hashed"))
)
_SERVICE_BY_HASH = select(ServiceRow.name, ServiceRow.admin).where(
    ServiceRow.api_token_hash == bindparam("hashed")
)


def hash_token(token: str) -> str:
    """SHA-256 of a token. Tokens are 128 random bits, so a fast hash suffices."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """A fresh random token (32 hex characters, as JupyterHub's)."""
    return secrets.token_hex(16)


@dataclass(frozen=True)
class Service:
    """A tool's identity: a service of the `services` setting or created through the API."""

    name: str
    admin: bool


_ADD_TOKEN = insert(cast(Table, APIToken.__table__))


def _row_values(
    token: str,
    user_id: int,
    note: str,
    scopes: list[str] | None,
    server_id: int | None = None,
    client_id: str | None = None,
    *,
    expires_in: float | None = None,
) -> dict[str, Any]:
    """The columns of a new token's row."""
    return {
        "hashed": hash_token(token),
        "prefix": token[:4],
        "user_id": user_id,
        "note": note,
        "scopes": scopes or [],
        "server_id": server_id,
        "client_id": client_id,
        "expires_at": utcnow() + timedelta(seconds=expires_in) if expires_in else None,
    }


class TokenService:
    """Users' API tokens over a Database, and the configured service tokens."""

    def __init__(self, db: Database, *, services: Iterable[dict] = ()) -> None:
        self.db = db
        # Config-defined service tokens live in memory, hashed like the rest.
        self.services = {
            hash_token(s["api_token"]): Service(s["name"], bool(s.get("admin", False)))
            for s in services
        }

    def create(
        self,
        user_id: int,
        *,
        note: str = "",
        expires_in: float | None = None,
        scopes: list[str] | None = None,
        server_id: int | None = None,
        client_id: str | None = None,
    ) -> tuple[str, APIToken]:
        """A new token for a user, in a write of its own: the plain token (shown once) and
        its row."""
        token = new_token()
        values = _row_values(
            token, user_id, note, scopes, server_id, client_id, expires_in=expires_in
        )
        row = APIToken(**values)
        with self.db.write() as own:
            own.add(row)
            own.flush()
        return token, row

    def add(
        self,
        session: Session,
        user_id: int,
        *,
        note: str,
        scopes: list[str],
        server_id: int | None = None,
        client_id: str | None = None,
    ) -> tuple[str, str]:
        """A new token in the caller's write transaction (a spawn's, with its server's
        OAuth client; an OAuth exchange's): the plain token and its hash. One INSERT, without
        the ORM's unit of work: the caller needs no row."""
        token = new_token()
        values = _row_values(token, user_id, note, scopes, server_id, client_id)
        session.execute(_ADD_TOKEN, values)
        return token, values["hashed"]

    def lookup(self, token: str) -> APIToken | Service | None:
        """The live token row or service for a plain token, or None."""
        hashed = hash_token(token)
        if hashed in self.services:
            return self.services[hashed]
        return self.find(hashed)

    def find(self, hashed: str) -> APIToken | Service | None:
        """The live token row (its owner loaded with it) or API-created service of a
        token's hash, or None; its use noted."""
        with self.db.connect() as conn:
            found = conn.execute(_BY_HASH, {"hashed": hashed}).first()
            if found is None:
                # A service created through the API (asked only when no token matched).
                service = conn.execute(_SERVICE_BY_HASH, {"hashed": hashed}).first()
                return Service(service.name, service.admin) if service is not None else None
        row = _token_of(found)
        if row.expired:
            return None
        self.note_use(row)
        return row

    def note_use(self, row: APIToken) -> None:
        """Record when a token was last used, at most once per ACTIVITY_RESOLUTION: a write
        per request would serialise every API call on the database's write lock."""
        now = utcnow()
        if row.last_activity is not None and now - row.last_activity < ACTIVITY_RESOLUTION:
            return
        try:
            # Never waiting for the write lock: a lookup is a read, and must not stall
            # behind another writer; a busy moment is noted at a later use instead.
            with self.db.write(wait=False) as session:
                query = update(APIToken).where(APIToken.id == row.id)
                session.execute(query.values(last_activity=now))
                if row.user_id is not None and row.server_id is None:
                    # Using the hub with one's token is activity of the user (JupyterHub's);
                    # a server calling the hub with its own token is not.
                    session.execute(USER_SEEN, {"user_id": row.user_id, "seen": now})
        except DatabaseUnavailable:
            return
        row.last_activity = now

    def list(self, user_id: int) -> list[APIToken]:
        """A user's live tokens."""
        with self.db.read() as session:
            rows = session.scalars(select(APIToken).where(APIToken.user_id == user_id)).all()
            return [r for r in rows if not r.expired]

    def get(self, user_id: int, token_id: str) -> APIToken:
        """The live token `a<N>` of a user; NotFound for a bad id, another owner's or expired."""
        with self.db.read() as session:
            return _find(session, user_id, token_id)

    def revoke(self, user_id: int, token_id: str) -> None:
        """Revoke a token; an OAuth token takes every token of its client with it."""
        with self.db.write() as session:
            token = _find(session, user_id, token_id)
            query = delete(APIToken).where(APIToken.user_id == user_id)
            if token.client_id:
                query = query.where(APIToken.client_id == token.client_id)
            else:
                query = query.where(APIToken.id == token.id)
            session.execute(query)

    def revoke_oauth(self, user_id: int) -> None:
        """Revoke every token a user's browser logins to servers were given (at logout)."""
        with self.db.write() as session:
            session.execute(
                delete(APIToken).where(APIToken.user_id == user_id, APIToken.client_id.is_not(None))
            )

    def revoke_for_server(self, session: Session, server_id: int) -> None:
        """Revoke the tokens issued to a server (at stop), in the caller's transaction."""
        session.execute(delete(APIToken).where(APIToken.server_id == server_id))

    def client_descriptions(self, client_ids: Iterable[str]) -> dict[str, str]:
        """What each OAuth client is, for token lists (its id if it has no description)."""
        wanted = set(client_ids)
        if not wanted:
            return {}
        with self.db.read() as session:
            rows = session.execute(
                select(OAuthClient.id, OAuthClient.description).where(OAuthClient.id.in_(wanted))
            ).all()
        found = {cid: description or cid for cid, description in rows}
        return {cid: found.get(cid, cid) for cid in wanted}


def _token_of(found: Row[Any]) -> APIToken:
    """The token row of a _BY_HASH result, with its owner (or None) as its user."""
    width = len(_TOKEN.columns)
    token = _TOKEN(found[:width])
    owner = _OWNER(found[width:]) if token.user_id is not None else None
    set_committed_value(token, "user", owner)
    return token


MAX_ID_DIGITS = 18


def _find(session: Session, user_id: int, token_id: str) -> APIToken:
    """The live token `a<N>` of user_id; wrong owner, bad id and expired are alike."""
    token = None
    # At most 18 digits: a larger id cannot be stored, so it cannot be a token's.
    if token_id[:1] == "a" and token_id[1:].isdigit() and len(token_id) <= MAX_ID_DIGITS + 1:
        token = session.scalar(
            select(APIToken).where(APIToken.id == int(token_id[1:]), APIToken.user_id == user_id)
        )
    if token is None or token.expired:
        owner = session.scalar(select(User.name).where(User.id == user_id))
        raise NotFound(f"No such token {token_id[:SHOWN_CHARS]} for user {owner}")
    return token


def init_app(app: Flask) -> None:
    """Create the TokenService, with the configured service tokens."""
    settings = app.config["FLASKHUB"]
    app.extensions["flaskhub.tokens"] = TokenService(get_db(app), services=settings.services)


def get_tokens(app: Flask | None = None) -> TokenService:
    """The TokenService of the given or current app."""
    return (app or current_app).extensions["flaskhub.tokens"]
