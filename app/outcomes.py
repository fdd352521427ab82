"""What the domain answers: outcomes and the errors that carry them (never HTTP codes).

Domain services (servers, users, groups, tokens, OAuth) return a ``Result``
or raise a ``DomainError``; one module of the web layer (``app.errors``)
turns them into status codes, messages, headers and pages.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

SHOWN_CHARS = 60


def shown(value: object) -> str:
    """A bad value as a message names it: its repr, cut to a short prefix (a huge body
    is never echoed back)."""
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "…"


class Outcome(enum.StrEnum):
    """Every way a request to the domain can end."""

    READY = "ready"  # the server is up and routed
    PENDING = "pending"  # still starting after slow_spawn_timeout
    ALREADY_PENDING = "already-pending"  # a spawn was already under way
    PENDING_STOP = "pending-stop"  # asked to start while it stops
    ALREADY_RUNNING = "already-running"
    THROTTLED = "throttled"  # concurrent_spawn_limit
    TOO_MANY_USERS = "too-many-users"  # active_server_limit
    FAILED = "failed"  # the spawn failed; the message says why
    STOPPED = "stopped"
    STOPPING = "stopping"  # a stop goes on in the background
    NOT_FOUND = "not-found"
    CONFLICT = "conflict"
    INVALID = "invalid"
    UNAVAILABLE = "unavailable"  # a service the hub depends on (an identity provider) is down
    FORBIDDEN = "forbidden"  # who asks may not do it (a login the settings do not allow)
    LOGIN_EXPIRED = "login-expired"  # the identity provider no longer vouches for a login
    NOT_MODIFIABLE = "not-modifiable"  # fixed by the settings (a service of `services`)


@dataclass(frozen=True)
class Result:
    """An outcome with what a person needs to act on it."""

    outcome: Outcome
    message: str = ""
    #: Seconds to wait before trying again (the limits).
    retry_after: int | None = None
    #: The status a failed spawner asked to show (``SpawnerError.status``), as data.
    failure_status: int | None = None


class DomainError(Exception):
    """A request the domain refuses; ``outcome`` says how, the message says why."""

    outcome = Outcome.INVALID

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(DomainError):
    outcome = Outcome.NOT_FOUND


class Conflict(DomainError):
    outcome = Outcome.CONFLICT


class Invalid(DomainError):
    outcome = Outcome.INVALID


class Forbidden(DomainError):
    outcome = Outcome.FORBIDDEN


class TooManyFailures(DomainError):
    """Too many wrong passwords for a name or from an address (login_failure_limit)."""

    outcome = Outcome.THROTTLED

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class NotModifiable(DomainError):
    """The thing exists but the settings define it: it cannot be changed at run time."""

    outcome = Outcome.NOT_MODIFIABLE


class Unavailable(DomainError):
    outcome = Outcome.UNAVAILABLE


class LoginExpired(DomainError):
    """The provider no longer vouches for a stored login: the person must log in again."""

    outcome = Outcome.LOGIN_EXPIRED
