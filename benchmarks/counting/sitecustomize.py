"""Counts the database work of each hub process, for benchmarks/transactions.py.

Python imports this at start-up when its directory is on PYTHONPATH. Only with
TX_COUNT_DIR set (the benchmark sets it for the hub it starts, and nothing
else does) it counts, on every engine of the process, the transactions and
statements of requests and of the greenlets they start (spawns, stops), not
those of the two background loops (reconcile, heartbeat), and keeps the running
totals in TX_COUNT_DIR/<pid>.json (with TX_COUNT_SQL set, the statements too).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

BACKGROUND = "run_forever"  # app.background's loops: Reconciler's and Heartbeats'


def _in_background() -> bool:
    """Whether this code runs in a background loop, or in a greenlet one started."""
    import gevent

    greenlet = gevent.getcurrent()
    while greenlet is not None:
        if getattr(getattr(greenlet, "_run", None), "__name__", "") == BACKGROUND:
            return True
        spawner = getattr(greenlet, "spawning_greenlet", None)
        greenlet = spawner() if spawner is not None else None
    return False


def _install(folder: Path) -> None:
    from sqlalchemy.engine import Engine

    from tests.transactions import Counter, Counts

    keep_sql = bool(os.environ.get("TX_COUNT_SQL"))
    counter = Counter(counted=lambda: not _in_background(), keep_sql=keep_sql)

    def save(counts: Counts) -> None:
        path = folder / f"{os.getpid()}.json"
        figures: dict[str, object] = {**counts.figures(), "sql": counts.sql}
        path.with_suffix(".tmp").write_text(json.dumps(figures))
        path.with_suffix(".tmp").replace(path)

    counter.on_change = save
    counter.listen(Engine)


if os.environ.get("TX_COUNT_DIR"):
    _install(Path(os.environ["TX_COUNT_DIR"]))
