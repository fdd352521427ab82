"""A hub worker on SQLite keeps serving while another process holds the write lock."""

from __future__ import annotations

import contextlib
import sqlite3
import threading

import pytest
import requests

from tests.integration.conftest import Hub

pytestmark = pytest.mark.integration


def _get_users(hub: Hub) -> int:
    response = requests.get(
        f"{hub.hub_url}/hub/api/users",
        headers={"Authorization": f"token {hub.admin_token}", "Connection": "close"},
        timeout=60,
    )
    return response.status_code


def test_reads_are_served_while_a_write_waits_for_another_process(hub: Hub) -> None:
    """One worker: its reconcile loop (renewing the lease each second) and a request
    both wait for the write lock the test holds; reads are answered meanwhile, and
    the waiting write succeeds once the lock is released."""
    created: list[int] = []
    db_file = hub.data_dir / "flaskhub.sqlite"
    with contextlib.closing(sqlite3.connect(db_file, isolation_level=None)) as other:
        other.execute("BEGIN IMMEDIATE")
        writer = threading.Thread(
            target=lambda: created.append(hub.api("POST", "/users/waited").status_code)
        )
        writer.start()
        for _ in range(5):
            assert _get_users(hub) == 200
            assert writer.is_alive(), created  # still waiting for the lock
        other.execute("ROLLBACK")
    writer.join(timeout=60)
    assert created == [201]
    assert "waited" in {u["name"] for u in hub.api("GET", "/users").json()}
    assert "database is locked" not in hub.log()
