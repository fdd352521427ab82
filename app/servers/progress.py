"""A worker's progress events, written together: one transaction for every event
reported before the writer next runs, one INSERT each, in the order reported.

A spawner reports its steps in quick succession (the local spawner's three come
within a millisecond, before it first waits), and a class starting at once
reports hundreds a second: each in a write of its own took the database's write
lock for every one. The writer gathers for `gather` seconds from the first event
of a write (the container spawners' steps come between engine calls, tens of ms
apart: each went in a write of its own), so streams in every worker see an event
within that, plus the write. Before the hub writes a spawn's end (its own last
steps, or its failure), `flush` has that spawn's events written at once and waits
for them, so a stream never sees them out of order and a spawn never waits out
the gathering.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import gevent
from gevent.event import Event

from app.db import DATABASE_DOWN

log = logging.getLogger(__name__)

Events = Sequence[tuple[int, dict[str, Any]]]


class ProgressWriter:
    """Queues (server id, event) pairs; a greenlet writes each queue whole with `write`."""

    def __init__(self, write: Callable[[Events], None], gather: float = 0.0) -> None:
        self._write = write
        self._gather = gather
        self._hurry = Event()  # a flush waits: write what is queued now
        self._queue: list[tuple[int, dict[str, Any]]] = []
        self._written = Event()  # set once the current queue is written
        self._waits: dict[int, Event] = {}  # a server's last event: its queue's Event
        self._writer: gevent.Greenlet | None = None

    def add(self, server_id: int, event: dict[str, Any]) -> None:
        """Queue an event; it is written once this greenlet next waits."""
        self._queue.append((server_id, event))
        self._waits[server_id] = self._written
        if self._writer is None or self._writer.dead:
            self._writer = gevent.spawn(self._write_all)

    def flush(self, server_id: int) -> None:
        """Return once every event queued for this server is written (or given up)."""
        written = self._waits.get(server_id)
        if written is not None:
            self._hurry.set()
            written.wait()

    def _write_all(self) -> None:
        while self._queue:
            if self._gather:
                self._hurry.wait(self._gather)
            # A flush from here on finds its events in this write or sets it again.
            self._hurry.clear()
            events, written = self._queue, self._written
            self._queue, self._written = [], Event()
            try:
                self._write(events)
            except DATABASE_DOWN as e:
                # A lost step of the progress bar does not fail a spawn.
                log.warning("%d progress events not kept (database down): %s", len(events), e)
            except Exception:
                log.exception("%d progress events not kept", len(events))
            finally:
                written.set()
                for done in [s for s, w in self._waits.items() if w is written]:
                    del self._waits[done]
