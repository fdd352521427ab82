"""Time what GET /hub/metrics computes at scrape time, at 10,000 users.

Builds a SQLite database of USERS users (servers in mixed states) through the
app's models, then times, REPEAT times each: the state counts, the user total,
and `metrics.render` (both, plus the exposition of every recorded metric).
`--multiprocess` renders as under `flaskhub run` (PROMETHEUS_MULTIPROC_DIR).

    .venv/bin/python benchmarks/bench_metrics.py [--users 10000] [--repeat 50] [--multiprocess]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# Every 10th user's server: 3 running, 1 spawning, 1 stopping, 1 failed, 1 stopped;
# 3 of 10 never started one (no row).
STATES = ["running", "running", "running", "spawning", "stopping", "failed", "stopped"]


def populate(app: Any, users: int) -> None:
    from app.db import get_db
    from app.models import Server, User, utcnow

    with get_db(app).write() as session:
        rows = [
            User(name=f"user{i}", created=utcnow(), cookie_id=uuid.uuid4().hex)
            for i in range(users)
        ]
        session.add_all(rows)
        session.flush()
        for i, user in enumerate(rows):
            if i % 10 < len(STATES):
                state = STATES[i % 10]
                url = f"http://127.0.0.1:{10000 + i}" if state in ("running", "stopping") else None
                session.add(Server(user_id=user.id, name="", state=state, url=url))


def exercise(app: Any) -> None:
    """Some requests and lifecycle samples, so the exposition has realistic series."""
    from app.servers import SpawnStatus, get_servers

    client = app.test_client()
    for path in ("/hub/api", "/hub/api/users/user1", "/hub/login", "/hub/health", "/nowhere"):
        for _ in range(3):
            client.get(path)
    recorder = get_servers(app).recorder
    for seconds in (0.3, 2.0, 7.0):
        recorder.spawn(SpawnStatus.SUCCESS, seconds)
        recorder.proxy_add(True, seconds / 100)
        recorder.server_poll(True, seconds / 100)


def timed(label: str, call: Callable[[], Any], repeat: int) -> None:
    call()  # warm up: first connection, compiled statements
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        call()
        times.append((time.perf_counter() - t0) * 1000)
    p95 = statistics.quantiles(times, n=20)[-1]
    print(f"{label:<42} median {statistics.median(times):7.2f} ms   p95 {p95:7.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--multiprocess", action="store_true")
    args = parser.parse_args()
    for name in list(os.environ):
        if name.startswith("FLASKHUB_"):
            del os.environ[name]
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        if args.multiprocess:
            # Before prometheus_client is imported: it picks its storage then.
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = tmp
        from app import create_app
        from app.config import get_settings
        from app.metrics import render
        from app.migrations import upgrade
        from app.servers import get_servers
        from app.users import get_users

        app = create_app({"data_dir": str(Path(tmp) / "data")})
        upgrade(get_settings(app).db_url)
        t0 = time.perf_counter()
        populate(app, args.users)
        exercise(app)
        print(f"{args.users} users created in {time.perf_counter() - t0:.1f} s; ", end="")
        print(f"counts {get_servers(app).counts()}")
        body = render(app)
        print(f"exposition: {len(body.splitlines())} lines, {len(body) // 1024} KiB")
        mode = "multiprocess" if args.multiprocess else "single process"
        print(f"{args.repeat} runs each, {mode}, SQLite, {sys.platform}:")
        timed("state counts (servers.counts)", get_servers(app).counts, args.repeat)
        timed("total users (users.count)", get_users(app).count, args.repeat)
        timed("whole scrape (metrics.render)", lambda: render(app), args.repeat)


if __name__ == "__main__":
    main()
