"""What the lifecycle answers and reports: outcomes, results, errors, the Recorder hooks."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class SpawnStatus(enum.StrEnum):
    """The outcome of a call to start_server; the label of the spawn-duration histogram."""

    SUCCESS = "success"
    FAILURE = "failure"
    ALREADY_PENDING = "already-pending"
    THROTTLED = "throttled"
    TOO_MANY_USERS = "too-many-users"


class ServerError(Exception):
    """A request about a server that cannot be done: status, message, extra headers."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


@dataclass
class SpawnResult:
    """What start_server answers: 201 ready, 202 pending, or an error."""

    code: int
    message: str = ""
    status: SpawnStatus | None = None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return self.code == 201

    @property
    def pending(self) -> bool:
        return self.code == 202


class Recorder:
    """Where the lifecycle reports durations; the metrics module provides the real one."""

    def spawn(self, status: SpawnStatus, seconds: float) -> None:
        """One call of start_server ended (or its spawn, when it outlived the request)."""

    def proxy_add(self, ok: bool, seconds: float) -> None:
        """A route was added (or failed to be)."""

    def proxy_delete(self, ok: bool, seconds: float) -> None:
        """A route was deleted (or failed to be)."""

    def server_stop(self, ok: bool, seconds: float) -> None:
        """A server was stopped."""

    def server_poll(self, alive: bool, seconds: float) -> None:
        """A server was polled."""

    def check_routes(self, seconds: float) -> None:
        """The proxy's routes were reconciled with the database."""

    def proxy_poll(self, seconds: float) -> None:
        """The proxy's whole routing table was fetched."""
