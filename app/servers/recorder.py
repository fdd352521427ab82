"""Where the lifecycle reports durations: the Recorder hooks and the spawn label."""

from __future__ import annotations

import enum

from app.outcomes import Outcome


class SpawnStatus(enum.StrEnum):
    """The label of the spawn-duration histogram: how a call of start_server ended."""

    SUCCESS = "success"
    FAILURE = "failure"
    ALREADY_PENDING = "already-pending"
    THROTTLED = "throttled"
    TOO_MANY_USERS = "too-many-users"

    @classmethod
    def of_refusal(cls, outcome: Outcome) -> SpawnStatus | None:
        """The label of a start refused at its claim (None: not observed)."""
        return _LABELS.get(outcome)


_LABELS = {
    Outcome.ALREADY_PENDING: SpawnStatus.ALREADY_PENDING,
    Outcome.PENDING_STOP: SpawnStatus.ALREADY_PENDING,
    Outcome.THROTTLED: SpawnStatus.THROTTLED,
    Outcome.TOO_MANY_USERS: SpawnStatus.TOO_MANY_USERS,
}


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
