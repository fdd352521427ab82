"""app/background.py: the reconcile lease is read before it is written."""

from __future__ import annotations

import contextlib
import socket
import sqlite3
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask

import app.db
from app.background import LEASE_NAME, acquire_lease
from app.config import get_settings
from app.db import DatabaseUnavailable, get_db
from app.models import Lease, utcnow
from app.processes import process_alive, this_process

# A process of this host that does not exist (pid_max is at most 2**22).
DEAD = "{host}:4194399:123"


def _hold(app: Flask, holder: str, seconds: float = 60) -> None:
    with get_db(app).write() as session:
        session.merge(
            Lease(name=LEASE_NAME, holder=holder, expires_at=utcnow() + timedelta(seconds=seconds))
        )


def _holder(app: Flask) -> str | None:
    with get_db(app).read() as session:
        lease = session.get(Lease, LEASE_NAME)
        return None if lease is None else lease.holder


@pytest.fixture
def hub_app(make_app: Callable[..., Flask], monkeypatch: pytest.MonkeyPatch) -> Flask:
    # A write that cannot take the lock fails at once (instead of after 10 s).
    monkeypatch.setattr(app.db, "WRITE_LOCK_TIMEOUT", 0.1)
    return make_app()


def test_the_first_worker_takes_the_lease_and_renews_it(hub_app: Flask) -> None:
    assert acquire_lease(hub_app, "w1", ttl=30)
    assert acquire_lease(hub_app, "w1", ttl=30)
    assert not acquire_lease(hub_app, "w2", ttl=30)
    assert _holder(hub_app) == "w1"


def test_a_lease_held_by_a_live_process_is_only_read(hub_app: Flask) -> None:
    _hold(hub_app, this_process())
    db_file = Path(get_settings(hub_app).data_dir) / "flaskhub.sqlite"
    with contextlib.closing(sqlite3.connect(db_file, isolation_level=None)) as other:
        other.execute("BEGIN IMMEDIATE")
        # A write would fail (the lock is held elsewhere): none is attempted.
        assert not acquire_lease(hub_app, "another-worker", ttl=30)
        with pytest.raises(DatabaseUnavailable):
            acquire_lease(hub_app, this_process(), ttl=30)  # renewing needs the lock
        other.execute("ROLLBACK")


def test_an_expired_lease_is_taken(hub_app: Flask) -> None:
    _hold(hub_app, "somewhere-else:1:1", seconds=-1)
    assert acquire_lease(hub_app, "w2", ttl=30)
    assert _holder(hub_app) == "w2"


def test_a_dead_holders_lease_is_taken_at_once_on_its_host(hub_app: Flask) -> None:
    dead = DEAD.format(host=socket.gethostname())
    assert process_alive(dead) is False
    _hold(hub_app, dead)
    assert acquire_lease(hub_app, "w2", ttl=30)
    # A holder on another host cannot be checked: its lease runs out first.
    _hold(hub_app, "another-host:1:1")
    assert process_alive("another-host:1:1") is None
    assert not acquire_lease(hub_app, "w3", ttl=30)
