"""Heartbeats: every hub process records every few seconds that it is alive.

A process on another host cannot be checked by its pid (app/processes.py); its
heartbeat can. Only where one database serves several hosts (PostgreSQL): on
SQLite every hub process shares one host and the pid check decides, so no
process takes SQLite's write lock for a beat. A beat is an upsert of the
process's own row stamped by the database's clock (the hosts' clocks may
differ), outside the write lock: there is nothing to check before it.
"""

from __future__ import annotations

import logging
import time

import gevent
from flask import Flask
from sqlalchemy import delete, func, select

from app.db import DATABASE_DOWN, Database, get_db
from app.models import Heartbeat
from app.processes import process_alive, this_process

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 2.0
# A process of another host silent this long is taken as dead (five missed beats).
DEAD_AFTER_SECONDS = 5 * HEARTBEAT_SECONDS
# Rows of processes silent this long are deleted by the reconcile loop.
FORGET_AFTER_SECONDS = 3600.0


class Heartbeats:
    """This process's beats, and what the others' say about them."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.enabled = db.is_postgresql
        # Since when this process's own beats go through without a gap (monotonic):
        # another's silence means its death only if ours has been steady longer (after
        # a database outage, or our own start, everyone is silent for a while).
        self.steady_since: float | None = None

    def beat(self) -> None:
        """Record that this process is alive; raises if the database is unreachable."""
        if not self.enabled:
            return
        # Only on PostgreSQL: its dialect (2.4 MiB) is not loaded for a hub on SQLite.
        from sqlalchemy.dialects.postgresql import insert

        now = func.statement_timestamp()
        upsert = insert(Heartbeat).values(process=this_process(), seen_at=now)
        upsert = upsert.on_conflict_do_update(index_elements=["process"], set_={"seen_at": now})
        try:
            with self.db.sessions() as session:
                session.execute(upsert)
                session.commit()
        except DATABASE_DOWN:
            self.steady_since = None
            raise
        if self.steady_since is None:
            self.steady_since = time.monotonic()

    def silent_for(self, name: str) -> float | None:
        """Seconds since the process's last beat; None if it never beat here."""
        age = func.extract("epoch", func.statement_timestamp() - Heartbeat.seen_at)
        with self.db.read() as session:
            found = session.scalar(select(age).where(Heartbeat.process == name))
        return None if found is None else float(found)

    def alive(self, name: str | None) -> bool | None:
        """Whether a hub process lives: by its pid on this host, else by its heartbeat;
        None when neither can tell (no beats, or ours not steady long enough)."""
        alive = process_alive(name)
        if alive is not None or name is None or not self.enabled or self.steady_since is None:
            return alive
        silent = self.silent_for(name)
        if silent is None:
            return None
        if silent <= DEAD_AFTER_SECONDS:
            return True
        steady = time.monotonic() - self.steady_since
        return False if steady > DEAD_AFTER_SECONDS else None

    def forget_old(self) -> None:
        """Delete the rows of processes silent for FORGET_AFTER_SECONDS (long gone)."""
        if not self.enabled:
            return
        age = func.extract("epoch", func.statement_timestamp() - Heartbeat.seen_at)
        with self.db.sessions() as session:
            session.execute(delete(Heartbeat).where(age > FORGET_AFTER_SECONDS))
            session.commit()

    def run_forever(self) -> None:
        """Beat every HEARTBEAT_SECONDS, in a greenlet of its own: a reconcile pass that
        waits for the write lock must not make this process look dead."""
        while True:
            try:
                self.beat()
            except DATABASE_DOWN:
                pass  # the reconcile loop says the database is unreachable
            except Exception:
                log.exception("Heartbeat failed; trying again")
            gevent.sleep(HEARTBEAT_SECONDS)


def get_heartbeats(app: Flask) -> Heartbeats:
    """The Heartbeats of an app's process (made on first use)."""
    if "flaskhub.heartbeats" not in app.extensions:
        app.extensions["flaskhub.heartbeats"] = Heartbeats(get_db(app))
    return app.extensions["flaskhub.heartbeats"]
