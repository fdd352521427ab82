"""Load: 1,000 concurrent spawn requests against concurrent_spawn_limit = 50.

The spawner (tests.spawners:GatedSpawner) holds every spawn until the test
opens its gate, so the hub's semantics give the exact mix: a spawn is claimed
in one write transaction that counts the pending spawns first, so the first 50
claims are pending (202 once slow_spawn_timeout passes) and each of the other
950 requests finds 50 pending and is throttled (429 with Retry-After). Opened,
the 50 finish (the tiny server of the benchmarks); stopped, every count is
back to 0 and no server process is left. Bounded in count and time (every
request and wait has a timeout); no timing is asserted.
"""

from __future__ import annotations

import sys
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.helpers import wait_for
from tests.integration.conftest import REPO, Hub
from tests.scrape import Samples
from tests.spawners import GATE_FILE

pytestmark = pytest.mark.integration

REQUESTS = 1000
LIMIT = 50
THREADS = 100
TINY_SERVER = REPO / "benchmarks" / "tiny_server.py"


@pytest.fixture(scope="module")
def load_hub(hub_factory: Callable[..., Hub]) -> Hub:
    return hub_factory(
        spawner="tests.spawners:GatedSpawner",
        spawner_cmd=[sys.executable, str(TINY_SERVER)],
        concurrent_spawn_limit=LIMIT,
        slow_spawn_timeout=0.1,
        start_timeout=300,
        workers=2,
    )


def _metrics(hub: Hub) -> Samples:
    response = hub.get("/hub/metrics", headers={"Authorization": f"token {hub.admin_token}"})
    assert response.status_code == 200, response.text
    return Samples.parse(response.text)


def _counts(hub: Hub) -> dict[str, float]:
    samples = _metrics(hub)
    counts = {
        state: samples.get_value("jupyterhub_servers", state=state)
        for state in ("active", "pending", "spawn_pending", "stop_pending", "ready")
    }
    return counts | {"running": samples.get_value("jupyterhub_running_servers")}


def _request(hub: Hub, method: str, name: str) -> tuple[int, str | None]:
    """One start or stop through CHP on its own connection: (status, Retry-After)."""
    response = requests.request(
        method,
        f"{hub.public_url}/hub/api/users/{name}/server",
        headers={"Authorization": f"token {hub.admin_token}", "Connection": "close"},
        timeout=60,
    )
    return response.status_code, response.headers.get("Retry-After")


def _all(hub: Hub, method: str, names: list[str]) -> list[tuple[int, str | None]]:
    with ThreadPoolExecutor(THREADS) as pool:
        return list(pool.map(lambda n: _request(hub, method, n), names, timeout=300))


def _server_processes(hub: Hub) -> list[int]:
    """Live processes started with this hub's JUPYTERHUB_API_URL."""
    needle = f"JUPYTERHUB_API_URL={hub.hub_url}/hub/api".encode()
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and needle in (entry / "environ").read_bytes().split(b"\0"):
                stat = (entry / "stat").read_text()
                if stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X"):
                    found.append(int(entry.name))
        except OSError:
            continue
    return found


def test_a_thousand_spawn_requests_get_exactly_what_the_limit_allows(load_hub: Hub) -> None:
    hub = load_hub
    names = [f"load{i:04d}" for i in range(REQUESTS)]
    assert hub.api("POST", "/users", json={"usernames": names}).status_code == 201
    pending_seen: list[float] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            pending_seen.append(_counts(hub)["spawn_pending"])
            done.wait(0.2)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        answers = _all(hub, "POST", names)
    finally:
        done.set()
        sampler.join(timeout=30)

    codes = Counter(code for code, _ in answers)
    assert codes == {202: LIMIT, 429: REQUESTS - LIMIT}, codes
    assert all(int(retry) > 0 for code, retry in answers if code == 429 and retry)
    assert all(retry for code, retry in answers if code == 429)
    assert pending_seen and max(pending_seen) <= LIMIT, pending_seen
    started = sorted(n for n, (code, _) in zip(names, answers, strict=True) if code == 202)
    assert _counts(hub)["spawn_pending"] == LIMIT
    assert sorted(u["name"] for u in hub.api("GET", "/users?state=active").json()) == started

    (hub.data_dir / GATE_FILE).touch()
    wait_for(lambda: _counts(hub)["running"] == LIMIT, timeout=120, interval=0.5)
    assert _counts(hub)["pending"] == 0
    assert len(_server_processes(hub)) == LIMIT

    stops = Counter(code for code, _ in _all(hub, "DELETE", started))
    assert set(stops) <= {202, 204}, stops
    zero = {"active": 0, "pending": 0, "spawn_pending": 0, "stop_pending": 0, "ready": 0}
    wait_for(lambda: _counts(hub) == zero | {"running": 0}, timeout=60, interval=0.5)
    wait_for(lambda: not _server_processes(hub), timeout=30, interval=0.5)
    assert "Traceback" not in hub.log(), hub.log()[-5000:]
