"""Counting the database work of an action: transactions, write transactions, statements.

`counting(engine)` counts on one engine (a test's app: ``get_db(app).engine``);
`Counter.listen(Engine)` counts on every engine of the process (the benchmark's
hub processes, benchmarks/counting/sitecustomize.py). Only SQLAlchemy's events:
nothing in app/ knows it is counted.

- a transaction: a BEGIN (the engine's "begin" event), a read's or a write's;
- a write: a transaction that took the database's write lock (app.db's
  ``BEGIN IMMEDIATE`` on SQLite, the execution option it is asked with);
- a statement: one execution on a cursor (an executemany is one), PRAGMAs and
  the BEGIN/COMMIT themselves not included.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event


@dataclass
class Counts:
    transactions: int = 0
    writes: int = 0
    statements: int = 0
    # The statements themselves, first line of each, for a failing test to show.
    sql: list[str] = field(default_factory=list)

    def __sub__(self, other: Counts) -> Counts:
        return Counts(
            self.transactions - other.transactions,
            self.writes - other.writes,
            self.statements - other.statements,
            self.sql[len(other.sql) :],
        )

    def figures(self) -> dict[str, int]:
        return {
            "transactions": self.transactions,
            "writes": self.writes,
            "statements": self.statements,
        }


class Counter:
    """Counts on an engine (or on the Engine class: every engine); `counted` decides
    whether the current work is counted at all (default: all of it)."""

    def __init__(self, counted: Callable[[], bool] = lambda: True, keep_sql: bool = True) -> None:
        self.counts = Counts()
        self.counted = counted
        self.keep_sql = keep_sql
        self.on_change: Callable[[Counts], None] | None = None

    def listen(self, target: Any) -> None:
        event.listen(target, "begin", self._begin)
        event.listen(target, "before_cursor_execute", self._statement)

    def forget(self, target: Any) -> None:
        event.remove(target, "begin", self._begin)
        event.remove(target, "before_cursor_execute", self._statement)

    def _begin(self, conn: Any) -> None:
        if not self.counted():
            return
        self.counts.transactions += 1
        if conn.get_execution_options().get("flaskhub_immediate"):
            self.counts.writes += 1
        self._changed()

    def _statement(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not self.counted():
            return
        self.counts.statements += 1
        if self.keep_sql:
            self.counts.sql.append(" ".join(statement.split())[:160])
        self._changed()

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change(self.counts)


@contextmanager
def counting(engine: Any) -> Iterator[Counts]:
    """The work done on engine inside the block (the Counts fill in as it runs)."""
    counter = Counter()
    counter.listen(engine)
    try:
        yield counter.counts
    finally:
        counter.forget(engine)
