"""LoginThrottle on a real SQLite file: counts per key, the window, the limit switched off."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from app.config import load
from app.db import Database
from app.logins import LoginThrottle, forget_failures
from app.models import LoginFailure, utcnow


def _throttle(db: Database, limit: int, window: float = 60) -> LoginThrottle:
    settings = load(
        environ={}, overrides={"login_failure_limit": limit, "login_failure_window": window}
    )
    return LoginThrottle(db, settings)


def test_the_limit_refuses_for_the_rest_of_the_window(db: Database) -> None:
    throttle = _throttle(db, limit=2)
    keys = ["name:eve", "addr:10.0.0.9"]
    throttle.failed(keys)
    assert throttle.retry_after(keys) is None
    throttle.failed(keys)
    wait = throttle.retry_after(keys)
    assert wait is not None and 58 <= wait <= 60
    assert throttle.retry_after(["name:eve"]) == wait  # each key on its own
    assert throttle.retry_after(["name:other"]) is None


def test_an_ended_window_starts_again(db: Database) -> None:
    throttle = _throttle(db, limit=2)
    throttle.failed(["name:eve"])
    throttle.failed(["name:eve"])
    with db.write() as session:
        row = session.get(LoginFailure, "name:eve")
        assert row is not None
        row.first_at = utcnow() - timedelta(seconds=61)
    assert throttle.retry_after(["name:eve"]) is None
    throttle.failed(["name:eve"])  # one failure in a new window
    assert throttle.retry_after(["name:eve"]) is None


def test_ended_windows_leave_no_rows(db: Database) -> None:
    throttle = _throttle(db, limit=5)
    throttle.failed([f"name:user{i}" for i in range(20)])
    with db.write() as session:
        session.execute(update(LoginFailure).values(first_at=utcnow() - timedelta(seconds=61)))
    throttle.failed(["name:new"])
    with db.read() as session:
        assert [row.key for row in session.scalars(select(LoginFailure))] == ["name:new"]


def test_success_forgets_the_names_failures(db: Database) -> None:
    throttle = _throttle(db, limit=3)
    throttle.failed(["name:eve"])
    throttle.failed(["name:eve"])
    with db.write() as session:
        forget_failures(session, "name:eve")
    throttle.failed(["name:eve"])
    throttle.failed(["name:eve"])
    assert throttle.retry_after(["name:eve"]) is None


@pytest.mark.parametrize("failures", [1, 50])
def test_a_limit_of_zero_never_refuses(db: Database, failures: int) -> None:
    throttle = _throttle(db, limit=0)
    for _ in range(failures):
        throttle.failed(["name:eve"])
    assert throttle.retry_after(["name:eve"]) is None
