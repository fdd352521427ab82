"""State counts, computed from the rows on request (never booked, so they cannot drift)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import Server, ServerState

# Asked by every spawn and scrape: built once (building costs more than running it).
_BY_STATE = (
    select(Server.state, func.count())
    .where(Server.state.in_([ServerState.SPAWNING, ServerState.STOPPING, ServerState.RUNNING]))
    .where((Server.state != ServerState.RUNNING) | Server.url.is_not(None))
    .group_by(Server.state)
)


def state_counts(session: Session) -> dict[str, int]:
    """{active, pending, spawn_pending, stop_pending, ready}, computed from the rows now."""
    rows = session.execute(_BY_STATE).all()
    by_state = {state: n for state, n in rows}
    spawn = by_state.get(ServerState.SPAWNING, 0)
    stop = by_state.get(ServerState.STOPPING, 0)
    ready = by_state.get(ServerState.RUNNING, 0)
    return {
        "active": spawn + stop + ready,
        "pending": spawn + stop,
        "spawn_pending": spawn,
        "stop_pending": stop,
        "ready": ready,
    }
