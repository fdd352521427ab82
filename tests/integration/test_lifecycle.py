"""The spawn lifecycle against the running system (real CHP, real processes).

The hub uses tests.spawners.FaultSpawner: a user's name prefix picks the
fault (slow-, hang-, fail-, failafter-, never-, exit-, oldversion-).
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from app.spawners import cpu
from tests.helpers import wait_for
from tests.integration.conftest import Hub, login, pid_alive, server_pids
from tests.spawners import FAIL_STATUS, SLOW_SECONDS, start_calls

pytestmark = pytest.mark.integration

RESTART_HINT = "You can try restarting your server from the home page"
SETTINGS = {
    "spawner": "tests.spawners:FaultSpawner",
    # Real servers start well within 3 s; injected slow ones take SLOW_SECONDS (5 s).
    "slow_spawn_timeout": 3,
    "start_timeout": 6,
    "http_timeout": 5,
    "poll_interval": 1,
}


@pytest.fixture(scope="module")
def hub(hub_factory: Callable[..., Hub]) -> Hub:
    return hub_factory(**SETTINGS)


def _user(hub: Hub, name: str) -> dict:
    hub.api("POST", f"/users/{name}")
    return hub.api("GET", f"/users/{name}").json()


def _model(hub: Hub, name: str) -> dict:
    response = hub.api("GET", f"/users/{name}")
    assert response.status_code == 200, response.text
    return response.json()


def _state(hub: Hub, name: str) -> tuple[str | None, bool]:
    server = _model(hub, name)["servers"].get("")
    return (server["pending"], server["ready"]) if server else (None, False)


def _lease(hub: Hub) -> list[tuple[str]]:
    """When the reconcile loop's lease expires, as stored ([] before its first pass)."""
    return hub.query("SELECT expires_at FROM leases WHERE name = 'reconcile'")


def _spawn_page(hub: Hub, session: requests.Session, name: str) -> None:
    """Press Start My Server (GET /hub/spawn) and wait until the server is ready."""
    session.get(f"{hub.public_url}/hub/spawn", allow_redirects=False, timeout=30)
    wait_for(lambda: _state(hub, name) == (None, True), timeout=30)


def _events(hub: Hub, name: str, token: str | None = None) -> list[dict]:
    return hub.progress_events(f"/users/{name}/server/progress", token=token)


# 3. start_server: an outcome at every exit ----------------------------------


def test_success_is_201_and_ready(hub: Hub) -> None:
    _user(hub, "plain")
    response = hub.api("POST", "/users/plain/server")
    assert response.status_code == 201
    assert _state(hub, "plain") == (None, True)
    assert hub.api("POST", "/users/plain/server").status_code == 400  # already running
    assert start_calls(hub.data_dir, "plain") == 1
    assert hub.api("DELETE", "/users/plain/server").status_code == 204


def test_servers_run_below_the_hub_for_the_cpu(hub: Hub) -> None:
    """server_nice (default 10): a class starting its servers must not stall the hub."""
    _user(hub, "niced")
    assert hub.api("POST", "/users/niced/server").status_code == 201
    (pid,) = server_pids("niced", hub)
    # Field 19 of /proc/<pid>/stat, after the command's closing parenthesis.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    assert int(fields[16]) == 10 and os.getpriority(os.PRIO_PROCESS, os.getpid()) == 0
    # Its session's group too, where the kernel shares the CPU between groups first.
    group = Path(f"/proc/{pid}/autogroup")
    if group.exists():
        assert group.read_text().split()[-2:] == ["nice", "10"], group.read_text()
    assert hub.api("DELETE", "/users/niced/server").status_code == 204


def test_servers_share_one_cpu_group_weighted_below_the_hub(hub: Hub) -> None:
    """server_cgroup: every server in a group of its own inside one group that weighs
    as one process at server_nice, so 200 starting servers together weigh less than
    the hub; the server's group is removed when it stops."""
    hierarchy = cpu.this_hierarchy()
    if hierarchy is None:
        pytest.skip("this system has no CPU controller")
    _user(hub, "grouped")
    assert hub.api("POST", "/users/grouped/server").status_code == 201
    (pid,) = server_pids("grouped", hub)
    own = _cpu_group(pid)
    assert own.endswith("/flaskhub-servers/user-grouped"), own
    group = hierarchy.mount / own.lstrip("/")
    weight = ("cpu.shares", "110") if hierarchy.version == 1 else ("cpu.weight.nice", "10")
    assert (group.parent / weight[0]).read_text().strip() == weight[1]
    assert hub.api("DELETE", "/users/grouped/server").status_code == 204
    assert not group.exists()


def _cpu_group(pid: int) -> str:
    """The process's group in the CPU hierarchy (v1's cpu line, else v2's)."""
    lines = [line.split(":", 2) for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines()]
    v1 = [path for _, names, path in lines if "cpu" in names.split(",")]
    return (v1 or [path for _, names, path in lines if names == ""])[0]


def test_already_pending_is_202_without_a_second_start(hub: Hub) -> None:
    _user(hub, "slow-twice")
    assert hub.api("POST", "/users/slow-twice/server").status_code == 202
    again = hub.api("POST", "/users/slow-twice/server")
    assert again.status_code == 202
    wait_for(lambda: _state(hub, "slow-twice") == (None, True), timeout=15)
    assert start_calls(hub.data_dir, "slow-twice") == 1
    assert len(server_pids("slow-twice")) == 1
    hub.api("DELETE", "/users/slow-twice/server")


@pytest.mark.parametrize(
    ("name", "status", "message"),
    [
        ("fail-now", FAIL_STATUS, "Injected failure for fail-now"),
        ("exit-early", 500, "exited with status 3"),
    ],
)
def test_fast_failure_answers_with_its_status_and_message(
    hub: Hub, name: str, status: int, message: str
) -> None:
    _user(hub, name)
    response = hub.api("POST", f"/users/{name}/server")
    assert response.status_code == status
    assert message in response.json()["message"]
    assert _state(hub, name) == (None, False)
    assert server_pids(name) == []


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("hang-forever", "did not start within 6 seconds"),
        ("never-answers", "didn't respond in 5 seconds"),
        ("failafter-late", "Injected late failure for failafter-late"),
    ],
)
def test_slow_failure_is_202_then_recorded(hub: Hub, name: str, message: str) -> None:
    _user(hub, name)
    assert hub.api("POST", f"/users/{name}/server").status_code == 202
    assert _state(hub, name) == ("spawn", False)
    events = _events(hub, name)
    assert events[0] == {"progress": 0, "message": "Server requested"}
    assert events[-1]["progress"] == 100 and events[-1]["failed"] is True
    assert message in events[-1]["message"]
    assert events[-1]["message"].startswith("Spawn failed: ")
    assert _state(hub, name) == (None, False)
    assert server_pids(name) == []
    assert start_calls(hub.data_dir, name) == 1


def test_too_many_users(hub_factory: Callable[..., Hub]) -> None:
    small = hub_factory(**SETTINGS, active_server_limit=2)
    for name in ("one", "two", "three"):
        _user(small, name)
    assert small.api("POST", "/users/one/server").status_code == 201
    assert small.api("POST", "/users/two/server").status_code == 201
    refused = small.api("POST", "/users/three/server")
    assert refused.status_code == 429
    assert refused.json()["message"] == "Active user limit exceeded. Try again in a few minutes."
    assert start_calls(small.data_dir, "three") == 0
    assert small.api("DELETE", "/users/one/server").status_code == 204
    assert small.api("POST", "/users/three/server").status_code == 201


def test_fifty_users_spawning_with_limit_ten(hub_factory: Callable[..., Hub]) -> None:
    # Ten servers starting at once on two cores: generous timeouts.
    busy = hub_factory(
        **{**SETTINGS, "start_timeout": 30, "http_timeout": 30}, concurrent_spawn_limit=10
    )
    names = [f"slow-crowd{i}" for i in range(50)]
    assert busy.api("POST", "/users", json={"usernames": names}).status_code == 201
    barrier = threading.Barrier(50)

    def spawn(name: str) -> requests.Response:
        barrier.wait(timeout=30)
        return requests.post(
            f"{busy.public_url}/hub/api/users/{name}/server",
            headers={"Authorization": f"token {busy.admin_token}"},
            timeout=60,
        )

    with ThreadPoolExecutor(50) as pool:
        responses = list(pool.map(spawn, names))
    codes = Counter(r.status_code for r in responses)
    # Slow spawns outlast slow_spawn_timeout: exactly the first ten are admitted (202).
    assert codes == {202: 10, 429: 40}
    for r in responses:
        if r.status_code == 429:
            retry = int(r.headers["Retry-After"])
            assert r.json()["message"] == (
                f"Too many users trying to log in right now. Try again in {retry} seconds."
            )
    admitted = [n for n, r in zip(names, responses, strict=True) if r.status_code == 202]
    assert start_calls(busy.data_dir) == 10

    def active() -> list[str]:
        return [u["name"] for u in busy.api("GET", "/users?state=active").json()]

    wait_for(lambda: len(busy.api("GET", "/users?state=ready").json()) == 10, timeout=30)
    assert sorted(active()) == sorted(admitted)
    for name in admitted:
        assert busy.api("DELETE", f"/users/{name}/server").status_code in (202, 204)
    wait_for(lambda: active() == [], timeout=30)
    assert all(server_pids(n) == [] for n in admitted)


# 1. state is computed, pending set before the first wait --------------------


def test_a_starting_server_is_always_pending_or_ready(hub: Hub) -> None:
    """Watched from before the POST until ready: stopped, then pending, then ready, with
    no moment in between that is neither; pending from the spawner's first step on."""
    name = "slow-watched"
    _user(hub, name)
    stopped, pending, ready = (None, False), ("spawn", False), (None, True)
    # (start() already called?, state read after that), in order; its own HTTP session.
    seen: list[tuple[bool, tuple[str | None, bool]]] = []
    watcher_hub = dataclasses.replace(hub, http=requests.Session())
    done = threading.Event()

    def watch() -> None:
        deadline = time.monotonic() + 30
        while not done.is_set() and time.monotonic() < deadline:
            started = start_calls(hub.data_dir, name) > 0
            seen.append((started, _state(watcher_hub, name)))
            if seen[-1][1] == ready:
                return

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        wait_for(lambda: seen, timeout=10)  # observed at least once before the POST
        assert hub.api("POST", f"/users/{name}/server").status_code == 202
        watcher.join(timeout=30)
    finally:
        done.set()
        watcher.join()
    # Each state seen, and how many times in a row.
    runs = [(state, len(list(same))) for state, same in itertools.groupby(s for _, s in seen)]
    assert [state for state, _ in runs] == [stopped, pending, ready], runs
    late = sum(1 for started, state in seen if started and state == stopped)
    assert not late, f"{late} times neither pending nor ready after start() was called: {runs}"
    hub.api("DELETE", f"/users/{name}/server")


# 5. failures are re-presented, never retried --------------------------------


def test_failed_spawn_is_shown_again_not_retried(hub: Hub) -> None:
    session = login(hub, "fail-shown")
    first = session.get(f"{hub.public_url}/hub/spawn", allow_redirects=False, timeout=30)
    assert first.headers["Location"] == "/hub/spawn-pending/fail-shown"
    for _ in range(3):
        page = session.get(
            f"{hub.public_url}/hub/user/fail-shown/tree", timeout=30, allow_redirects=False
        )
        assert page.status_code == FAIL_STATUS
        assert "Injected failure for fail-shown" in page.text
        assert RESTART_HINT in page.text and 'href="/hub/home"' in page.text
    # Through the proxy too: /user/fail-shown/ has no route, reaches the hub.
    via_proxy = session.get(f"{hub.public_url}/user/fail-shown/", timeout=30)
    assert via_proxy.status_code == FAIL_STATUS
    assert start_calls(hub.data_dir, "fail-shown") == 1
    home = session.get(f"{hub.public_url}/hub/home", timeout=30)
    assert "Start My Server" in home.text and "Injected failure" in home.text
    # An explicit request clears the failure and spawns again.
    session.get(f"{hub.public_url}/hub/spawn", allow_redirects=False, timeout=30)
    assert start_calls(hub.data_dir, "fail-shown") == 2


def test_slow_failure_long_after_the_page_was_left_is_shown(hub: Hub) -> None:
    session = login(hub, "failafter-away")
    page = session.get(f"{hub.public_url}/hub/spawn", allow_redirects=False, timeout=30)
    assert page.headers["Location"] == "/hub/spawn-pending/failafter-away"
    # It fails SLOW_SECONDS later, with nobody on the page.
    wait_for(lambda: _state(hub, "failafter-away") == (None, False), timeout=SLOW_SECONDS + 15)
    shown = session.get(f"{hub.public_url}/hub/user/failafter-away/", timeout=30)
    assert shown.status_code == FAIL_STATUS
    assert "Injected late failure" in shown.text and RESTART_HINT in shown.text
    assert start_calls(hub.data_dir, "failafter-away") == 1


def test_failure_survives_a_hub_restart(hub_factory: Callable[..., Hub]) -> None:
    restarted = hub_factory(**SETTINGS)
    _user(restarted, "fail-kept")
    assert restarted.api("POST", "/users/fail-kept/server").status_code == FAIL_STATUS
    restarted.restart()
    session = login(restarted, "fail-kept")
    page = session.get(f"{restarted.public_url}/hub/user/fail-kept/", timeout=30)
    assert page.status_code == FAIL_STATUS
    assert "Injected failure for fail-kept" in page.text
    assert start_calls(restarted.data_dir, "fail-kept") == 1


# 6. spawn-pending page and progress events -----------------------------------


def test_spawn_pending_page_and_progress_through_the_proxy(hub: Hub) -> None:
    session = login(hub, "slow-progress")
    # Made before the spawn: the CLI takes seconds on a busy machine, and a stream opened
    # after the spawn ended has no steps to show.
    token = hub.token("slow-progress")
    spawn = session.get(f"{hub.public_url}/hub/spawn", allow_redirects=False, timeout=30)
    assert spawn.headers["Location"] == "/hub/spawn-pending/slow-progress"
    page = session.get(f"{hub.public_url}/hub/spawn-pending/slow-progress", timeout=30)
    assert page.status_code == 200 and "<progress" in page.text
    events = _events(hub, "slow-progress", token=token)
    assert events[0] == {"progress": 0, "message": "Server requested"}
    assert any(e["message"].startswith("Injected slow step") for e in events[1:-1]), events
    assert events[-1] == {
        "progress": 100,
        "ready": True,
        "url": "/user/slow-progress/",
        "message": "Server ready at /user/slow-progress/",
    }
    ready = session.get(
        f"{hub.public_url}/hub/spawn-pending/slow-progress", allow_redirects=False, timeout=30
    )
    assert ready.headers["Location"] == "/user/slow-progress/"
    hub.api("DELETE", "/users/slow-progress/server")


def test_spawn_pending_page_for_a_failed_spawn_offers_relaunch(hub: Hub) -> None:
    session = login(hub, "fail-pending")
    session.get(f"{hub.public_url}/hub/spawn", timeout=30)
    page = session.get(f"{hub.public_url}/hub/spawn-pending/fail-pending", timeout=30)
    assert page.status_code == FAIL_STATUS
    assert "Spawn failed" in page.text and "Relaunch" in page.text
    assert 'href="/hub/spawn"' in page.text


# 7. URLs and redirect loops ----------------------------------------------------


def test_hub_user_url_redirects_to_the_server_with_a_counter(hub: Hub) -> None:
    session = login(hub, "loopy")
    _spawn_page(hub, session, "loopy")
    first = session.get(
        f"{hub.public_url}/hub/user/loopy/some/path?a=1", allow_redirects=False, timeout=30
    )
    assert first.headers["Location"] == "/user/loopy/some/path?a=1&redirects=1"
    bad = session.get(
        f"{hub.public_url}/hub/user/loopy/x?redirects=abc", allow_redirects=False, timeout=30
    )
    assert bad.headers["Location"] == "/user/loopy/x?redirects=1"
    looped = session.get(f"{hub.public_url}/hub/user/loopy/x?redirects=4", timeout=30)
    assert looped.status_code == 500 and "Redirect loop detected." in looped.text
    t0 = time.monotonic()
    backoff = session.get(
        f"{hub.public_url}/hub/user/loopy/x?redirects=1", allow_redirects=False, timeout=30
    )
    assert time.monotonic() - t0 >= 2
    assert backoff.headers["Location"] == "/user/loopy/x?redirects=2"
    assert "Redirect loop detected on /hub/user/loopy/x" in hub.log()


def test_version_mismatch_explains_the_loop_early(hub: Hub) -> None:
    session = login(hub, "oldversion-x")
    _spawn_page(hub, session, "oldversion-x")
    page = session.get(f"{hub.public_url}/hub/user/oldversion-x/?redirects=2", timeout=30)
    assert page.status_code == 500
    assert (
        "Redirect loop detected. Notebook has jupyterhub version 1.0.0, but the Hub "
        "expects 6.1.1. Try installing jupyterhub==6.1.1 in the user environment"
    ) in page.text


def test_a_lost_route_is_re_added_when_a_loop_starts(hub: Hub) -> None:
    session = login(hub, "lost-route")
    _spawn_page(hub, session, "lost-route")
    token = hub.token("lost-route")
    proxy_token = (hub.data_dir / "proxy_auth_token").read_text().strip()
    # The reconcile loop restores lost routes too (a full check every few seconds): when
    # it wins the race with the request below, the redirect loop's own repair went unused,
    # so the route is taken away again.
    for _attempt in range(3):
        seen = len(hub.log())
        requests.delete(
            f"{hub.proxy_api_url}/api/routes/user/lost-route",
            headers={"Authorization": f"token {proxy_token}"},
            timeout=10,
        )
        # Follow redirects like a browser: proxy -> hub -> proxy -> hub (loop) -> repaired.
        response = session.get(
            f"{hub.public_url}/user/lost-route/api/status",
            headers={"Authorization": f"token {token}"},
            timeout=60,
        )
        assert response.status_code == 200, (response.url, response.text[:500])
        assert response.json()["user"] == "lost-route"
        assert "/user/lost-route" in hub.routes()
        if "re-added it" in hub.log()[seen:]:
            break
        assert "Route /user/lost-route/ missing from the proxy" in hub.log()[seen:]
    else:
        pytest.fail("The reconcile loop restored the route first, three times in a row.")


# 8. implicit spawn ------------------------------------------------------------


def test_implicit_spawn_for_a_stopped_never_failed_server(hub: Hub) -> None:
    session = login(hub, "implicit")
    page = session.get(f"{hub.public_url}/hub/user/implicit/", allow_redirects=False, timeout=30)
    assert page.status_code == 302
    # Ready within slow_spawn_timeout: to the server; else to the progress page.
    assert page.headers["Location"] in ("/user/implicit/", "/hub/spawn-pending/implicit")
    wait_for(lambda: _state(hub, "implicit") == (None, True), timeout=30)
    assert start_calls(hub.data_dir, "implicit") == 1
    hub.api("DELETE", "/users/implicit/server")


def test_no_implicit_spawn_when_disabled(hub_factory: Callable[..., Hub]) -> None:
    strict = hub_factory(**SETTINGS, implicit_spawn=False)
    session = login(strict, "explicit")
    page = session.get(f"{strict.public_url}/hub/user/explicit/", timeout=30)
    assert page.status_code == 424
    assert "Server not running" in page.text and "Launch" in page.text
    assert start_calls(strict.data_dir, "explicit") == 0


# 9. stop ---------------------------------------------------------------------


def test_delete_during_a_pending_spawn_cancels_it(hub: Hub) -> None:
    _user(hub, "slow-cancel")
    assert hub.api("POST", "/users/slow-cancel/server").status_code == 202
    stop = hub.api("DELETE", "/users/slow-cancel/server")
    assert stop.status_code == 202
    wait_for(lambda: _state(hub, "slow-cancel") == (None, False), timeout=15)
    time.sleep(SLOW_SECONDS)  # the cancelled spawn must not come back to life
    assert server_pids("slow-cancel") == []
    assert "/user/slow-cancel" not in hub.routes()
    assert _model(hub, "slow-cancel")["servers"] == {}


def test_requests_while_stopping(hub: Hub) -> None:
    _user(hub, "stubborn-stop")
    assert hub.api("POST", "/users/stubborn-stop/server").status_code == 201
    pids = server_pids("stubborn-stop")
    assert len(pids) == 1
    # A process that ignores SIGTERM keeps the server stopping for the grace period.
    os.kill(pids[0], signal.SIGSTOP)
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(hub.api, "DELETE", "/users/stubborn-stop/server")
        wait_for(lambda: _state(hub, "stubborn-stop")[0] == "stop", timeout=10)
        wait_for(lambda: "/user/stubborn-stop" not in hub.routes(), timeout=5)  # route first
        assert pid_alive(pids[0])  # ... then the process
        assert hub.api("DELETE", "/users/stubborn-stop/server").status_code == 202
        again = hub.api("POST", "/users/stubborn-stop/server")
        assert again.status_code == 400
        assert again.json()["message"] == "stubborn-stop is pending stop"
        assert first.result().status_code == 204
    assert not pid_alive(pids[0])
    assert _state(hub, "stubborn-stop") == (None, False)


# 10. poll ----------------------------------------------------------------------


def test_a_server_that_dies_is_noticed_by_the_poll(hub: Hub) -> None:
    session = login(hub, "dies")
    _spawn_page(hub, session, "dies")
    (pid,) = server_pids("dies")
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: "/user/dies" not in hub.routes(), timeout=10)
    assert _state(hub, "dies") == (None, False)
    page = session.get(f"{hub.public_url}/user/dies/", timeout=30)
    assert page.status_code == 424
    assert "stopped unexpectedly" in page.text and "Server not running" in page.text
    assert start_calls(hub.data_dir, "dies") == 1


def test_a_dead_server_is_noticed_on_the_next_request(hub_factory: Callable[..., Hub]) -> None:
    lazy = hub_factory(**{**SETTINGS, "poll_interval": 600})
    session = login(lazy, "dies-quietly")
    _spawn_page(lazy, session, "dies-quietly")
    # The loop renews its lease each tick: a renewal means its first pass, the only
    # poll for 600 s, is over.
    first = wait_for(lambda: _lease(lazy))
    wait_for(lambda: _lease(lazy) != first, timeout=10)
    (pid,) = server_pids("dies-quietly")
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not pid_alive(pid), timeout=10)
    page = session.get(f"{lazy.public_url}/user/dies-quietly/", timeout=30)
    # CHP keeps its own status (503) and shows the hub's page, which tells whoever asks
    # nothing of the server but sends the owner to the hub.
    assert page.status_code == 503
    assert 'href="/hub/user/dies-quietly/"' in page.text
    assert "stopped unexpectedly" not in page.text
    shown = session.get(f"{lazy.public_url}/hub/user/dies-quietly/", timeout=30)
    assert shown.status_code == 424
    assert "Server not running" in shown.text and "stopped unexpectedly" in shown.text
    assert "/user/dies-quietly" not in lazy.routes()
    again = session.get(f"{lazy.public_url}/user/dies-quietly/", timeout=30)
    assert again.status_code == 424 and "stopped unexpectedly" in again.text
