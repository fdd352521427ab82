"""Metrics of the running system: scrape /hub/metrics before and after real actions.

The hubs use tests.spawners.FaultSpawner (`fail-*` fails at once, `slow-*`
takes SLOW_SECONDS) and a concurrent spawn limit of 1, so one slow spawn
throttles the next. Deltas are exact for everything the reconcile loop does
not touch on its own (it polls servers and checks routes every few seconds).
The second hub runs two gunicorn workers: counts from both are merged, the
computed gauges are not doubled, and a killed worker's counts survive it.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from tests.helpers import wait_for
from tests.integration.conftest import Hub, pid_alive
from tests.scrape import Samples
from tests.spawners import FAIL_STATUS

pytestmark = pytest.mark.integration

SETTINGS = {
    "spawner": "tests.spawners:FaultSpawner",
    # Real servers start within 2 s; slow-* ones take 5 s, so their request gets a 202.
    "slow_spawn_timeout": 2,
    "start_timeout": 10,
    "http_timeout": 10,
    "concurrent_spawn_limit": 1,
}
SPAWN = "jupyterhub_server_spawn_duration_seconds_count"
ADD = "jupyterhub_proxy_add_duration_seconds_count"
DELETE = "jupyterhub_proxy_delete_duration_seconds_count"
STOP = "jupyterhub_server_stop_seconds_count"
REQUESTS = "jupyterhub_request_duration_seconds_count"
SERVER_HANDLER = "jupyterhub.apihandlers.users.UserServerAPIHandler"
ROOT_HANDLER = "jupyterhub.apihandlers.hub.RootAPIHandler"
STARTUP = "jupyterhub_hub_startup_duration_seconds_count"
INIT_SPAWNERS = "jupyterhub_init_spawners_duration_seconds_count"
LOOP = "jupyterhub_event_loop_interval_seconds_count"
STATUSES = ("success", "failure", "already-pending", "throttled", "too-many-users")


@pytest.fixture(scope="module")
def hub(hub_factory: Callable[..., Hub]) -> Hub:
    return hub_factory(**SETTINGS)


@pytest.fixture(scope="module")
def hub2(hub_factory: Callable[..., Hub]) -> Hub:
    """The same hub with two gunicorn workers."""
    return hub_factory(**SETTINGS, workers=2)


def scrape(hub: Hub, direct: bool = False) -> Samples:
    """GET /hub/metrics as the admin, through CHP or straight to the hub (a new connection)."""
    base = hub.hub_url if direct else hub.public_url
    response = requests.get(
        f"{base}/hub/metrics",
        headers={"Authorization": f"token {hub.admin_token}", "Connection": "close"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return Samples.parse(response.text)


def spawn_deltas(after: Samples, before: Samples) -> dict[str, float]:
    return {status: after.delta(before, SPAWN, status=status) for status in STATUSES}


def expect_spawns(**counts: float) -> dict[str, float]:
    """Spawn-status deltas: the given ones, every other status 0."""
    return {status: counts.get(status.replace("-", "_"), 0) for status in STATUSES}


def ready(hub: Hub, name: str) -> bool:
    server = hub.api("GET", f"/users/{name}").json()["servers"].get("")
    return bool(server and server["ready"])


def start(hub: Hub, name: str) -> int:
    """Create name and start their server; wait until it is ready; the POST's status."""
    hub.api("POST", f"/users/{name}")
    response = hub.api("POST", f"/users/{name}/server")
    assert response.status_code in (201, 202), response.text
    wait_for(lambda: ready(hub, name), timeout=30)
    return response.status_code


def stop(hub: Hub, name: str) -> None:
    response = hub.api("DELETE", f"/users/{name}/server")
    assert response.status_code in (202, 204), response.text
    wait_for(lambda: hub.api("GET", f"/users/{name}").json()["servers"].get("") is None)


# -- one worker ---------------------------------------------------------------------


def test_successful_spawn(hub: Hub) -> None:
    before = scrape(hub)
    code = start(hub, "ok-spawn")
    after = scrape(hub)
    assert spawn_deltas(after, before) == expect_spawns(success=1)
    assert after.delta(before, ADD, status="success") == 1
    assert after.delta(before, ADD, status="failure") == 0
    assert after.delta(before, "jupyterhub_running_servers") == 1
    assert after.delta(before, "jupyterhub_servers", state="ready") == 1
    assert after.delta(before, "jupyterhub_total_users") == 1
    labels = {"method": "POST", "handler": SERVER_HANDLER, "code": str(code)}
    assert after.delta(before, REQUESTS, **labels) == 1
    assert "/user/ok-spawn" in hub.routes()


def test_failing_spawn(hub: Hub) -> None:
    hub.api("POST", "/users/fail-spawn")
    before = scrape(hub)
    response = hub.api("POST", "/users/fail-spawn/server")
    assert response.status_code == FAIL_STATUS
    after = scrape(hub)
    assert spawn_deltas(after, before) == expect_spawns(failure=1)
    assert after.delta(before, ADD, status="success") == 0
    assert after.delta(before, "jupyterhub_running_servers") == 0
    labels = {"method": "POST", "handler": SERVER_HANDLER}
    assert after.delta(before, REQUESTS, code=str(FAIL_STATUS), **labels) == 1


def test_throttled_and_already_pending_spawns(hub: Hub) -> None:
    for name in ("slow-first", "slow-second"):
        hub.api("POST", f"/users/{name}")
    before = scrape(hub)
    assert hub.api("POST", "/users/slow-first/server").status_code == 202
    pending = scrape(hub)
    assert pending.get_value("jupyterhub_servers", state="spawn_pending") == 1
    throttled = hub.api("POST", "/users/slow-second/server")
    assert throttled.status_code == 429
    assert hub.api("POST", "/users/slow-first/server").status_code == 202
    during = scrape(hub)
    assert spawn_deltas(during, before) == expect_spawns(throttled=1, already_pending=1)
    wait_for(lambda: ready(hub, "slow-first"), timeout=30)
    after = scrape(hub)
    assert spawn_deltas(after, before) == expect_spawns(success=1, throttled=1, already_pending=1)
    assert after.get_value("jupyterhub_servers", state="spawn_pending") == 0
    # The slow spawn took over 5 s: its sample is above the 5 s bucket.
    bucket = "jupyterhub_server_spawn_duration_seconds_bucket"
    assert after.delta(before, bucket, status="success", le="5.0") == 0
    assert after.delta(before, bucket, status="success", le="10.0") == 1


def test_stop(hub: Hub) -> None:
    start(hub, "ok-stop")
    before = scrape(hub)
    stop(hub, "ok-stop")
    after = scrape(hub)
    assert after.delta(before, STOP, status="success") == 1
    assert after.delta(before, STOP, status="failure") == 0
    assert after.delta(before, DELETE, status="success") == 1
    assert after.delta(before, DELETE, status="failure") == 0
    assert after.delta(before, "jupyterhub_running_servers") == -1
    assert spawn_deltas(after, before) == expect_spawns()
    assert "/user/ok-stop" not in hub.routes()


def chp_pid(hub: Hub) -> int | None:
    """The CHP process serving this hub's API port, found by its command line."""
    port = hub.env["FLASKHUB_PROXY_API_PORT"]
    for entry in Path("/proc").iterdir():
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        for flag, value in zip(args, args[1:], strict=False):
            if flag == b"--api-port" and value == port.encode() and pid_alive(int(entry.name)):
                return int(entry.name)
    return None


def routes_or_none(hub: Hub) -> dict | None:
    try:
        return hub.routes()
    except requests.RequestException:
        return None


def test_chp_restart_restores_routes(hub: Hub) -> None:
    start(hub, "ok-chp")
    before = scrape(hub)
    running = before.get_value("jupyterhub_running_servers")
    old = chp_pid(hub)
    assert old is not None
    os.kill(old, signal.SIGKILL)
    wait_for(lambda: (chp_pid(hub) or old) != old, timeout=20)
    restored = wait_for(lambda: "/user/ok-chp" in (routes_or_none(hub) or {}), timeout=20)
    assert restored
    after = scrape(hub)
    # One pass of check_routes re-added every running server's route (CHP itself
    # recreates "/" from its --default-target, which is the hub).
    assert after.delta(before, ADD, status="success") == running
    assert after.delta(before, ADD, status="failure") == 0
    assert after.delta(before, "jupyterhub_check_routes_duration_seconds_count") >= 1
    assert after.delta(before, "jupyterhub_proxy_poll_duration_seconds_count") >= 1
    assert after.get_value("jupyterhub_running_servers") == running
    assert set(hub.routes()) >= {"/", "/user/ok-chp"}


# -- two workers --------------------------------------------------------------------


def worker_pids(hub: Hub) -> set[int]:
    """The gunicorn workers: the children of `flaskhub run` (which becomes gunicorn's
    master) that run gunicorn (CHP is a child too)."""
    return {pid for pid in children(hub.process.pid) if _runs_gunicorn(pid)}


def _runs_gunicorn(pid: int) -> bool:
    try:
        return b"gunicorn" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def children(parent: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == parent and fields[0] not in ("Z", "X"):
            found.add(int(entry.name))
    return found


def per_worker(hub: Hub) -> dict[int, Samples]:
    """Each process's own recorded samples, read from its files in the metrics directory."""
    directory = hub.data_dir / "metrics"
    found: dict[int, Samples] = {}
    for path in directory.glob("histogram_*.db"):
        with tempfile.TemporaryDirectory() as alone:
            shutil.copy(path, alone)
            registry = CollectorRegistry()
            MultiProcessCollector(registry, path=alone)
            found[int(path.stem.split("_")[-1])] = Samples.parse(generate_latest(registry).decode())
    return found


def served(samples: Samples, handler: str) -> float:
    return samples.get(
        (REQUESTS, frozenset({"method": "GET", "handler": handler, "code": "200"}.items())), 0.0
    )


def test_two_workers_merge_counts(hub2: Hub) -> None:
    workers = worker_pids(hub2)
    assert len(workers) == 2
    before = scrape(hub2, direct=True)
    first = per_worker(hub2)
    sent = 0
    # New connections until both workers have answered some (the kernel picks one each time).
    while sent < 400:
        for _ in range(10):
            response = requests.get(
                f"{hub2.hub_url}/hub/api", headers={"Connection": "close"}, timeout=10
            )
            assert response.status_code == 200
            sent += 1
        now = per_worker(hub2)
        if all(
            served(now[w], ROOT_HANDLER) > served(first.get(w, Samples()), ROOT_HANDLER)
            for w in workers
        ):
            break
    else:
        pytest.fail("one worker answered every request")
    after = scrape(hub2, direct=True)
    labels = {"method": "GET", "handler": ROOT_HANDLER, "code": "200"}
    assert after.delta(before, REQUESTS, **labels) == sent
    assert sum(served(s, ROOT_HANDLER) for s in per_worker(hub2).values()) == after.get_value(
        REQUESTS, **labels
    )


def test_start_up_is_observed_once_and_each_worker_samples_its_loop(hub2: Hub) -> None:
    samples = scrape(hub2)
    assert samples.get_value(STARTUP) == 1
    assert 0 < samples.get_value("jupyterhub_hub_startup_duration_seconds_sum") < 120
    assert samples.get_value(INIT_SPAWNERS) == 1
    workers = worker_pids(hub2)
    wait_for(
        lambda: all(
            per_worker(hub2).get(w, Samples()).get((LOOP, frozenset()), 0) > 0 for w in workers
        )
    )


def test_two_workers_spawn_stop_and_gauges(hub2: Hub) -> None:
    before = scrape(hub2)
    start(hub2, "ok-two")
    # Scrapes answered by either worker: one running server, one success, never doubled.
    for _ in range(10):
        during = scrape(hub2, direct=True)
        assert (
            during.get_value("jupyterhub_running_servers")
            == before.get_value("jupyterhub_running_servers") + 1
        )
        assert (
            during.get_value("jupyterhub_servers", state="active")
            == before.get_value("jupyterhub_servers", state="active") + 1
        )
        assert (
            during.get_value("jupyterhub_total_users")
            == before.get_value("jupyterhub_total_users") + 1
        )
        assert spawn_deltas(during, before) == expect_spawns(success=1)
        assert during.delta(before, ADD, status="success") == 1
    stop(hub2, "ok-two")
    after = scrape(hub2)
    assert after.delta(before, STOP, status="success") == 1
    assert after.delta(before, DELETE, status="success") == 1
    assert after.delta(before, "jupyterhub_running_servers") == 0


def test_a_restarted_worker_loses_no_counts(hub2: Hub) -> None:
    requests.get(f"{hub2.hub_url}/hub/api", timeout=10)
    workers = worker_pids(hub2)
    before = scrape(hub2, direct=True)
    victim = min(workers)
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: len(worker_pids(hub2)) == 2 and victim not in worker_pids(hub2), timeout=30)
    wait_for(lambda: requests.get(f"{hub2.hub_url}/hub/health", timeout=5).ok, timeout=30)
    after = scrape(hub2, direct=True)
    # Everything counted before is still counted: nothing lost, nothing counted twice.
    labels = {"method": "GET", "handler": ROOT_HANDLER, "code": "200"}
    assert after.get_value(REQUESTS, **labels) == before.get_value(REQUESTS, **labels)
    assert spawn_deltas(after, before) == expect_spawns()
    for key, value in before.items():
        if key[0].endswith(("_count", "_sum", "_bucket")):
            assert after[key] >= value, key
    assert victim in per_worker(hub2)  # the dead worker's file is still part of the sums
    assert after.get_value(STARTUP) == 1  # the new worker did not start the hub


def test_a_restarted_hub_counts_from_zero(hub2: Hub) -> None:
    before = scrape(hub2)
    assert before.get_value(SPAWN, status="success") >= 1
    hub2.restart()
    after = scrape(hub2)
    assert spawn_deltas(after, Samples()) == expect_spawns()
    assert after.get_value(STARTUP) == 1
    assert after.get_value(INIT_SPAWNERS) == 1
    assert after.get_value(STOP, status="success") == 0
    assert not [w for w in per_worker(hub2) if w not in worker_pids(hub2)]


# -- the Grafana dashboards ---------------------------------------------------------

# Every query on a jupyterhub_* metric in jupyterhub/grafana-dashboards (commit ef44b4e,
# March 2026): dashboards/jupyterhub.jsonnet and dashboards/activity.jsonnet, copied
# as they are. Left out: jupyterhub_user_group_info (group.jsonnet, user.jsonnet,
# common.libsonnet), which jupyterhub-groups-exporter publishes, not the hub.
DASHBOARD_QUERIES = [
    """sum by (le) (
      jupyterhub_request_duration_seconds_bucket{
        app="jupyterhub", namespace=~"$hub",
        handler!="jupyterhub.apihandlers.users.SpawnProgressAPIHandler"
      }
      - jupyterhub_request_duration_seconds_bucket{
        app="jupyterhub", namespace=~"$hub",
        handler!="jupyterhub.apihandlers.users.SpawnProgressAPIHandler"
      } offset $__rate_interval
    )""",
    """sum(increase(jupyterhub_request_duration_seconds_count{
        app="jupyterhub", namespace=~"$hub",
    }[2m])) by (code)""",
    """sum by (le) (
      jupyterhub_server_spawn_duration_seconds_bucket{namespace=~"$hub"}
      - jupyterhub_server_spawn_duration_seconds_bucket{namespace=~"$hub"} offset $__rate_interval
    )""",
    """sum(increase(jupyterhub_server_spawn_duration_seconds_count{status!="success",
        namespace=~"$hub"}[2m])) by (status)""",
    'max(jupyterhub_running_servers{namespace=~"$hub"}) by (namespace)',
    'max(jupyterhub_active_users{period="24h", namespace=~"$hub"}) by (namespace)',
    'max(jupyterhub_active_users{period="7d", namespace=~"$hub"}) by (namespace)',
    'max(jupyterhub_active_users{period="30d", namespace=~"$hub"}) by (namespace)',
]
# Labels Prometheus's Kubernetes scrape adds to every target, not the hub.
TARGET_LABELS = {"app", "namespace"}
SELECTOR = re.compile(r"(jupyterhub_\w+)\s*\{([^}]*)\}", re.S)
MATCHER = re.compile(r'(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"')
BY = re.compile(r"by\s*\(([^)]*)\)")


def dashboard_needs() -> list[tuple[str, str, str, str | None]]:
    """(query, metric, label, value or None) for each label each selector names or groups by."""
    needs = []
    for query in DASHBOARD_QUERIES:
        grouped = {label.strip() for by in BY.findall(query) for label in by.split(",")}
        for metric, matchers in SELECTOR.findall(query):
            needs.append((query, metric, "", None))
            for label, _op, value in MATCHER.findall(matchers):
                needs.append((query, metric, label, value))
            needs.extend((query, metric, label, None) for label in grouped)
    return [need for need in needs if need[2] not in TARGET_LABELS]


def test_every_dashboard_query_finds_its_metrics_labels_and_handlers(hub: Hub) -> None:
    # The excluded handler must be a real label value, or the exclusion excludes nothing.
    hub.api("POST", "/users/dash")
    requests.get(
        f"{hub.public_url}/hub/api/users/dash/server/progress",
        headers={"Authorization": f"token {hub.admin_token}"},
        timeout=10,
    )
    samples = scrape(hub)
    needs = dashboard_needs()
    assert len(needs) >= 15
    for query, metric, label, value in needs:
        found = {dict(labels).get(label) for name, labels in samples if name == metric}
        assert found, f"no {metric} in the exposition, for {query}"
        if label:
            assert found - {None}, f"{metric} has no label {label!r}, for {query}"
        if value is not None:
            assert value in found, f"{metric} has no {label}={value!r}, for {query}"
