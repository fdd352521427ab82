"""Time GET /hub/metrics through a real hub with 10,000 users and 200 running servers.

Starts `flaskhub run` fresh (SQLite, CHP, the tiny server of the side-by-side
benchmark as every user's server; see hubs.py), creates USERS users with the
bulk API, starts RUNNING servers (in batches under concurrent_spawn_limit) and
waits until the hub counts them all running, then scrapes `/hub/metrics`
through CHP SCRAPES times on one keep-alive connection with an admin token
and prints p50/p95/max. Stops the servers and the hub at the end, and reports
any process of the run still alive.

    .venv/bin/python benchmarks/metrics_scrape.py [--users 10000] [--running 200] [--scrapes 200]
"""

from __future__ import annotations

import argparse
import re
import secrets
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hubs import leftovers, start_flaskhub, wait_until  # noqa: E402
from measure import Client, create_users, ms, quantile, stop_all, username  # noqa: E402

SPAWN_BATCH = 50
GOAL_MS = 10.0
RUNNING = re.compile(rb"^jupyterhub_running_servers (\S+)$", re.M)


def running_servers(api: Client) -> int:
    status, body = api.request("GET", "/hub/metrics")
    found = RUNNING.search(body) if status == 200 else None
    return int(float(found.group(1))) if found else -1


def start_servers(api: Client, count: int, timeout: float) -> None:
    """Start servers for the first count users, SPAWN_BATCH at a time, until all run."""
    for first in range(0, count, SPAWN_BATCH):
        names = [username(i) for i in range(first, min(first + SPAWN_BATCH, count))]
        with ThreadPoolExecutor(len(names)) as pool:
            statuses = set(
                pool.map(lambda n: api.request("POST", f"/hub/api/users/{n}/server")[0], names)
            )
        if not statuses <= {201, 202}:
            raise RuntimeError(f"spawn answers {sorted(statuses)}")
        expected = first + len(names)
        wait_until(
            lambda n=expected: running_servers(api) == n,  # type: ignore[misc]
            timeout,
            f"{expected} running",
        )


def get_ms(api: Client, path: str, count: int) -> list[float]:
    """Seconds of count GETs of path, one after the other on one connection."""
    api.request("GET", path)  # warm up: the connection, compiled statements
    times = []
    for _ in range(count):
        t0 = time.perf_counter()
        status, _body = api.request("GET", path)
        times.append(time.perf_counter() - t0)
        if status != 200:
            raise RuntimeError(f"GET {path} -> {status}")
    return times


def report(label: str, times: list[float]) -> float:
    p50 = ms(quantile(times, 0.5))
    print(
        f"{label:<40} p50 {p50:6.2f} ms   p95 {ms(quantile(times, 0.95)):6.2f} ms"
        f"   max {ms(max(times)):6.2f} ms"
    )
    return p50


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--running", type=int, default=200)
    parser.add_argument("--scrapes", type=int, default=200)
    parser.add_argument("--timeout", type=float, default=300.0, help="per spawn batch, seconds")
    args = parser.parse_args()
    tag = f"metrics-{secrets.token_hex(4)}"
    with tempfile.TemporaryDirectory(prefix="flaskhub-bench-") as tmp:
        hub = start_flaskhub(Path(tmp), tag)
        api = Client(hub.public_url, hub.token)
        try:
            created = create_users(api, 0, args.users, batch=500, concurrency=4)
            print(f"{created['users']} users in {created['seconds']} s", flush=True)
            t0 = time.perf_counter()
            start_servers(api, args.running, args.timeout)
            print(f"{args.running} servers running in {time.perf_counter() - t0:.1f} s")
            print(f"{args.scrapes} GETs each through CHP, one keep-alive connection:")
            # The floor: the same hop to an answer that needs no database.
            report("GET /hub/health (the floor)", get_ms(api, "/hub/health", args.scrapes))
            p50 = report("GET /hub/metrics", get_ms(api, "/hub/metrics", args.scrapes))
            verdict = "met" if p50 <= GOAL_MS else "NOT met"
            print(f"goal: /hub/metrics p50 <= {GOAL_MS:g} ms: {verdict}")
            stop_all(api, [username(i) for i in range(args.running)], args.timeout)
        finally:
            hub.stop()
            left = leftovers(tag)
            if left:
                print(f"processes left behind (killed): {left}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
