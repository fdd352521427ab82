"""app.servers.progress: the events reported before the writer runs go in one write, in
the order reported, and a spawn's end waits for its own."""

from __future__ import annotations

import logging
from typing import Any

import gevent
import pytest
from sqlalchemy.exc import OperationalError

from app.servers.progress import Events, ProgressWriter


def step(n: int) -> dict[str, Any]:
    return {"progress": n, "message": f"step {n}"}


class Written:
    """The writes the writer made, each a list of (server id, event)."""

    def __init__(self, fail: int = 0) -> None:
        self.writes: list[list[tuple[int, dict[str, Any]]]] = []
        self.fail = fail

    def __call__(self, events: Events) -> None:
        gevent.sleep(0.01)  # a write waits on the database: others report meanwhile
        if self.fail:
            self.fail -= 1
            raise OperationalError("INSERT", {}, Exception("database is locked"))
        self.writes.append(list(events))


def test_events_reported_in_a_row_are_one_write_in_order() -> None:
    written = Written()
    writer = ProgressWriter(written)
    for n in (10, 20, 50):
        writer.add(1, step(n))
    writer.add(2, step(10))
    assert written.writes == []  # not before this greenlet waits
    writer.flush(1)
    assert written.writes == [[(1, step(10)), (1, step(20)), (1, step(50)), (2, step(10))]]


def test_events_reported_while_a_write_runs_go_in_the_next() -> None:
    written = Written()
    writer = ProgressWriter(written)
    writer.add(1, step(10))
    gevent.sleep(0)  # the writer takes the first event and waits on its write
    writer.add(2, step(10))
    writer.add(1, step(20))
    writer.flush(1)
    assert written.writes == [[(1, step(10))], [(2, step(10)), (1, step(20))]]


def test_flush_waits_only_for_its_own_servers_events() -> None:
    written = Written()
    writer = ProgressWriter(written)
    writer.add(1, step(10))
    writer.flush(2)  # none queued for server 2: at once
    assert written.writes == []
    writer.flush(1)
    assert len(written.writes) == 1
    writer.flush(1)  # all written: at once
    assert len(written.writes) == 1


def test_a_write_lost_to_the_database_is_logged_and_the_spawn_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    written = Written(fail=1)
    writer = ProgressWriter(written)
    writer.add(1, step(10))
    with caplog.at_level(logging.WARNING, "app.servers.progress"):
        writer.flush(1)
    assert "1 progress events not kept (database down)" in caplog.text
    writer.add(1, step(20))
    writer.flush(1)
    assert written.writes == [[(1, step(20))]]


def test_events_within_the_gathering_go_in_one_write() -> None:
    written = Written()
    writer = ProgressWriter(written, gather=0.2)
    writer.add(1, step(10))
    gevent.sleep(0.02)  # an engine call between two steps: the writer waits on
    writer.add(1, step(40))
    gevent.sleep(0.02)
    writer.add(2, step(10))
    gevent.sleep(0.3)
    assert written.writes == [[(1, step(10)), (1, step(40)), (2, step(10))]]


def test_a_flush_writes_at_once_without_waiting_out_the_gathering() -> None:
    written = Written()
    writer = ProgressWriter(written, gather=30)
    writer.add(1, step(10))
    gevent.sleep(0.02)
    writer.add(1, step(40))
    with gevent.Timeout(5):
        writer.flush(1)
    assert written.writes == [[(1, step(10)), (1, step(40))]]
    writer.add(2, step(10))  # a new write gathers again: a second flush is as quick
    with gevent.Timeout(5):
        writer.flush(2)
    assert written.writes[1:] == [[(2, step(10))]]
