"""Domain: sharing one server with users and groups, directly or through codes (JupyterHub 5).

A Share gives its user (or every member of its group) `scopes` on one server,
each with that server's filter (`access:servers!server=alice/` by default); the
holder's rights are their roles' plus the scopes shared with them and their
groups (app.auth). A share code, exchanged by whoever holds it before it
expires, creates (or extends) a Share for them.

Shares and codes name the server by its id and store the scopes without a
filter: the filter is made from the server's current owner and name whenever it
is read (`filtered`), so a renamed user's shares go with them and a new user of
the old name gets none of them.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any

from flask import Flask, current_app
from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Select,
    bindparam,
    delete,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session, joinedload

from app.db import Database, get_db, rows_changed
from app.models import Server, Share, ShareCode, user_group_map, utcnow
from app.outcomes import Invalid, NotFound
from app.scopes import ScopeError, check_scopes
from app.tokens import hash_token

log = logging.getLogger(__name__)

CODE_BYTES = 32
DEFAULT_CODE_LIFETIME = 86400
# JupyterHub's bounds of expires_in: a minute to a year.
CODE_LIFETIME_RANGE = (60, 525600 * 60)


def server_filter(owner: str, server_name: str) -> str:
    return f"server={owner}/{server_name}"


def apply_filter(scopes: Iterable[str], owner: str, server_name: str) -> list[str]:
    """The scopes, each with the server's filter; Invalid for another filter or an unknown
    scope (JupyterHub's Share._apply_filter)."""
    wanted = server_filter(owner, server_name)
    found = set()
    for scope in scopes:
        base, _, given = scope.partition("!")
        if given and given != wanted:
            raise Invalid(f"!{given} not allowed on sharing {scope}, only !{wanted}")
        found.add(base)
    try:
        check_scopes(sorted(found))
    except ScopeError as e:
        raise Invalid(str(e)) from None
    return sorted(f"{base}!{wanted}" for base in found)


def base_scopes(scopes: Iterable[str]) -> list[str]:
    """The scopes without their filters (as stored)."""
    return sorted({scope.partition("!")[0] for scope in scopes})


def filtered(scopes: Iterable[str], server: Server) -> list[str]:
    """Stored scopes of a share or code, each with its server's filter as named now."""
    wanted = server_filter(server.user.name, server.name)
    return [f"{base}!{wanted}" for base in base_scopes(scopes)]


class ShareService:
    """Shares and share codes over a Database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- shares ------------------------------------------------------------------

    def grant(
        self, server: Server, scopes: list[str], *, user_id: int | None, group_id: int | None
    ) -> Share:
        """Give a user or a group the scopes on server (added to those already given);
        Invalid for its owner, who holds them already (a group they are in is fine)."""
        if user_id is not None and user_id == server.user_id:
            raise Invalid(
                f"Cannot share {server_filter(server.user.name, server.name).partition('=')[2]} "
                "with its owner, who has it already."
            )
        with self.db.write() as session:
            return _grant(session, server.id, server.user_id, scopes, user_id, group_id)

    def revoke(
        self,
        server: Server,
        scopes: list[str] | None,
        *,
        user_id: int | None,
        group_id: int | None,
    ) -> Share | None:
        """Take scopes (all without scopes) back; the share left, or None if none is."""
        with self.db.write() as session:
            share = _find(session, server.id, user_id, group_id)
            if share is None:
                return None
            taken = base_scopes(scopes or [])
            left = [s for s in share.scopes if scopes is not None and s not in taken]
            if not left:
                session.delete(share)
                return None
            share.scopes = left
            return share

    def find(self, server_id: int, *, user_id: int | None, group_id: int | None) -> Share | None:
        with self.db.read() as session:
            return _find(session, server_id, user_id, group_id)

    def delete(self, share_id: int) -> None:
        with self.db.write() as session:
            session.execute(delete(Share).where(Share.id == share_id))

    def delete_all(self, server_id: int) -> int:
        """Revoke every share of a server; how many there were."""
        with self.db.write() as session:
            result = session.execute(delete(Share).where(Share.server_id == server_id))
            return rows_changed(result)

    def of_owner(
        self, owner_id: int, server_id: int | None, offset: int, limit: int
    ) -> tuple[Sequence[Share], int]:
        """The shares of an owner's servers (or of one), a page and the total."""
        where = Share.owner_id == owner_id if server_id is None else Share.server_id == server_id
        return self._page(select(Share).where(where).order_by(Share.id), offset, limit)

    def with_user(self, user_id: int, offset: int, limit: int) -> tuple[Sequence[Share], int]:
        """Shares with a user, directly or through their groups."""
        return self._page(
            select(Share).where(shared_with(user_id)).order_by(Share.id), offset, limit
        )

    def with_group(self, group_id: int, offset: int, limit: int) -> tuple[Sequence[Share], int]:
        query = select(Share).where(Share.group_id == group_id).order_by(Share.id)
        return self._page(query, offset, limit)

    # -- codes -------------------------------------------------------------------

    def new_code(self, server: Server, scopes: list[str], expires_in: int) -> tuple[ShareCode, str]:
        """A new code for scopes on server, valid expires_in seconds; (row, code shown once)."""
        code = secrets.token_urlsafe(CODE_BYTES)
        with self.db.write() as session:
            row = ShareCode(
                owner_id=server.user_id,
                server_id=server.id,
                scopes=base_scopes(scopes),
                expires_at=utcnow() + timedelta(seconds=expires_in),
                hashed=hash_token(code),
            )
            session.add(row)
            session.flush()
            code_id = row.id
        with self.db.read() as session:
            found = session.get(ShareCode, code_id)
            assert found is not None
            return found, code

    def codes(
        self, owner_id: int, server_id: int | None, offset: int, limit: int
    ) -> tuple[Sequence[ShareCode], int]:
        """The live codes of an owner's servers (or of one), a page and the total."""
        mine = ShareCode.owner_id == owner_id
        where = mine if server_id is None else ShareCode.server_id == server_id
        query = select(ShareCode).where(where, ShareCode.expires_at > utcnow())
        return self._page(query.order_by(ShareCode.id), offset, limit)

    def find_code(self, code: str, server_id: int | None = None) -> ShareCode | None:
        """The live code (on server_id, if given), or None."""
        with self.db.read() as session:
            row = session.scalar(select(ShareCode).where(ShareCode.hashed == hash_token(code)))
        if row is None or row.expires_at <= utcnow():
            return None
        return row if server_id is None or row.server_id == server_id else None

    def delete_codes(self, server_id: int, *, code: str = "", code_id: str = "") -> None:
        """Delete one code (by the code or its id, `sc_<N>`) or all of a server's; NotFound."""
        where = ShareCode.server_id == server_id
        if code:
            where &= ShareCode.hashed == hash_token(code)
        elif code_id:
            number = code_id.removeprefix("sc_")
            if not code_id.startswith("sc_") or not number.isdigit():
                raise NotFound(f"No code found matching id={code_id}")
            where &= ShareCode.id == int(number)
        with self.db.write() as session:
            deleted = rows_changed(session.execute(delete(ShareCode).where(where)))
        if (code or code_id) and not deleted:
            raise NotFound("No matching code found")

    def exchange(self, code: str, user_id: int) -> Share:
        """Turn a live code into a share with user_id; Invalid if unknown, expired or theirs.

        One write: the code is counted as used only if it is live at that moment, so a
        code revoked or expired after someone looked at it is never exchanged.
        """
        with self.db.write() as session:
            values = {"code_hash": hash_token(code), "now": utcnow()}
            used = session.execute(_USE_CODE, values).one_or_none()
            if used is None:
                raise Invalid("Invalid share code: it is unknown or expired")
            code_id, owner_id, server_id, scopes = used
            if owner_id == user_id:
                raise Invalid("You can't share with yourself!")  # rolled back: not counted
            share = _grant(session, server_id, owner_id, scopes, user_id, None)
        log.info("Share code sc_%s exchanged by user id %s", code_id, user_id)
        return share

    # -- helpers -----------------------------------------------------------------

    def _page(self, query: Select[Any], offset: int, limit: int) -> tuple[Sequence[Any], int]:
        with self.db.read() as session:
            total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
            rows = session.scalars(query.offset(offset).limit(limit)).unique().all()
        return rows, total


# A share with what its model shows (its server and owner, its user's and group's names),
# in one statement: not those users' servers, groups and roles (three SELECTs each).
SHARE_LOADS = (
    joinedload(Share.server).joinedload(Server.user).lazyload("*"),
    joinedload(Share.user).lazyload("*"),
    joinedload(Share.group).lazyload("*"),
)

# A live code's use, counted, and what it shares: one statement, so nothing can revoke
# or expire the code between the check and the use.
_USE_CODE = (
    update(ShareCode)
    .where(ShareCode.hashed == bindparam("code_hash"), ShareCode.expires_at > bindparam("now"))
    .values(exchange_count=ShareCode.exchange_count + 1, last_exchanged_at=bindparam("now"))
    .returning(ShareCode.id, ShareCode.owner_id, ShareCode.server_id, ShareCode.scopes)
    .execution_options(synchronize_session=False)
)


def _grant(
    session: Session,
    server_id: int,
    owner_id: int,
    scopes: Iterable[str],
    user_id: int | None,
    group_id: int | None,
) -> Share:
    """Add scopes to the share of a server with a user or group (made if new), in the
    caller's transaction; the share with what its model shows (server, user, group)."""
    share = _find(session, server_id, user_id, group_id)
    if share is not None:
        share.scopes = sorted({*share.scopes, *base_scopes(scopes)})
        return share
    share = Share(
        owner_id=owner_id,
        server_id=server_id,
        user_id=user_id,
        group_id=group_id,
        scopes=base_scopes(scopes),
    )
    session.add(share)
    session.flush()
    # Its server, user and group, in one statement (as _find loads them).
    query = select(Share).where(Share.id == share.id).options(*SHARE_LOADS)
    return session.scalars(query.execution_options(populate_existing=True)).one()


def shared_with(user_id: int | BindParameter[int]) -> ColumnElement[bool]:
    """Shares with the user, directly or through one of their groups."""
    groups = select(user_group_map.c.group_id).where(user_group_map.c.user_id == user_id)
    return or_(Share.user_id == user_id, Share.group_id.in_(groups))


def _find(
    session: Session, server_id: int, user_id: int | None, group_id: int | None
) -> Share | None:
    return session.scalar(
        select(Share)
        .options(*SHARE_LOADS)
        .where(
            Share.server_id == server_id,
            Share.user_id.is_(None) if user_id is None else Share.user_id == user_id,
            Share.group_id.is_(None) if group_id is None else Share.group_id == group_id,
        )
    )


def init_app(app: Flask) -> None:
    app.extensions["flaskhub.shares"] = ShareService(get_db(app))


def get_shares(app: Flask | None = None) -> ShareService:
    """The ShareService of the given or current app."""
    return (app or current_app).extensions["flaskhub.shares"]
