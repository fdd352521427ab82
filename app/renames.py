"""Domain: the filters of stored tokens follow the user or group they were made for.

A token's scopes name users, servers and groups by name (`!user=carol`,
`!server=carol/lab`, `!group=team`), as JupyterHub's do. A name is not an
identity: renamed, the user keeps what their tokens and others' tokens name (the
filters move with them); deleted, what named them goes, so that a new user or
group of the old name gets nothing from it. A token left with no scope is
deleted, never kept: no scopes would mean all of its owner's rights.

Shares hold no names at all (app.shares: the server's id, filters derived when
read). Roles and services in the settings are the operator's words and keep
naming names.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import String, cast, select
from sqlalchemy.orm import Session

from app.models import APIToken

log = logging.getLogger(__name__)


def renamed_scope(scope: str, old: str, new: str) -> str:
    """The scope with a filter on user `old` (or one of their servers) naming `new`."""
    base, _, given = scope.partition("!")
    if given == f"user={old}":
        return f"{base}!user={new}"
    if given.startswith(f"server={old}/"):
        return f"{base}!server={new}/{given.removeprefix(f'server={old}/')}"
    return scope


def names_user(scope: str, name: str) -> bool:
    """Whether the scope's filter names the user or one of their servers."""
    given = scope.partition("!")[2]
    return given == f"user={name}" or given.startswith(f"server={name}/")


def names_group(scope: str, name: str) -> bool:
    return scope.partition("!")[2] == f"group={name}"


def follow_user_rename(session: Session, old: str, new: str) -> None:
    """Every token's filters on user `old` now name `new` (in the rename's transaction)."""
    changed = _rewrite(session, f"={old}", lambda s: [renamed_scope(x, old, new) for x in s])
    if changed:
        log.info("Renamed %s to %s in the scopes of %d token(s)", old, new, changed)


def forget_user(session: Session, name: str) -> None:
    """Remove every token's scopes that name user `name` (in the deletion's transaction)."""
    changed = _rewrite(session, f"={name}", lambda s: [x for x in s if not names_user(x, name)])
    if changed:
        log.info("Removed the scopes naming user %s from %d token(s)", name, changed)


def forget_group(session: Session, name: str) -> None:
    """Remove every token's scopes that name group `name` (in the deletion's transaction)."""
    changed = _rewrite(session, f"={name}", lambda s: [x for x in s if not names_group(x, name)])
    if changed:
        log.info("Removed the scopes naming group %s from %d token(s)", name, changed)


def _rewrite(session: Session, needle: str, change: Callable[[list[str]], list[str]]) -> int:
    """Apply change to the scopes of the tokens whose scopes mention needle; how many changed.

    A token left with no scope is deleted (no scopes means all of its owner's rights).
    """
    # The JSON text narrows the rows; the scopes themselves decide.
    query = select(APIToken).where(cast(APIToken.scopes, String).contains(needle))
    changed = 0
    for token in session.scalars(query):
        scopes = change(list(token.scopes))
        if scopes == token.scopes:
            continue
        changed += 1
        if scopes:
            token.scopes = scopes
        else:
            session.delete(token)
    return changed
