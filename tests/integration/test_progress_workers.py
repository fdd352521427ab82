"""Progress events of one spawn, streamed by any worker of a hub with two workers."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from tests.integration.conftest import Hub, wait_for

pytestmark = pytest.mark.integration

STREAMS_AT_ONCE = 8
STREAMS_LATER = 8


def test_every_worker_streams_the_spawners_progress(hub_factory: Callable[..., Hub]) -> None:
    hub = hub_factory(workers=2, spawner="tests.spawners:FaultSpawner", slow_spawn_timeout=0.5)
    name = "slow-streamed"
    assert hub.api("POST", f"/users/{name}").status_code == 201
    assert hub.api("POST", f"/users/{name}/server").status_code == 202
    streams: list[list[dict[str, Any]]] = []
    first_step_seen = threading.Event()

    def read_stream() -> None:
        # Straight to the hub, each on a connection of its own, so both workers serve some.
        streams.append(list(_events(hub, name)))

    def watch_first() -> None:
        for event in _events(hub, name):
            if event["message"].startswith("Injected slow step"):
                first_step_seen.set()

    threads = [threading.Thread(target=watch_first)]
    threads += [threading.Thread(target=read_stream) for _ in range(STREAMS_AT_ONCE)]
    for thread in threads:
        thread.start()
    # Streams opened after an event was stored must replay it, whichever worker serves them.
    assert first_step_seen.wait(timeout=30)
    later = [threading.Thread(target=read_stream) for _ in range(STREAMS_LATER)]
    for thread in later:
        thread.start()
    for thread in threads + later:
        thread.join(timeout=60)
    assert len(streams) == STREAMS_AT_ONCE + STREAMS_LATER
    for events in streams:
        steps = [e["message"] for e in events if e["message"].startswith("Injected slow step")]
        assert steps, events
        assert events[-1]["ready"] is True
    # The streams were served by both workers, not only the one running the spawn.
    served_by = wait_for(lambda: _progress_workers(hub, name), timeout=10)
    assert len(served_by) == 2, served_by
    hub.api("DELETE", f"/users/{name}/server")


def _events(hub: Hub, name: str) -> Iterator[dict[str, Any]]:
    """The events of a user's progress stream, read to the end on a new connection."""
    with requests.get(
        f"{hub.hub_url}/hub/api/users/{name}/server/progress",
        headers={"Authorization": f"token {hub.admin_token}"},
        stream=True,
        timeout=60,
    ) as response:
        assert response.status_code == 200, response.text
        for line in response.iter_lines(decode_unicode=True):
            if line.startswith("data:"):
                yield json.loads(line[5:])


def _progress_workers(hub: Hub, name: str) -> set[str] | None:
    """The pids of the workers whose access log shows a progress stream (None before 2)."""
    pattern = re.compile(
        rf'^\[I \S+ (\d+) \S+ gunicorn\.access\] .*"GET /hub/api/users/{name}/server/progress '
        r'[^"]*" 200 ',
        re.MULTILINE,
    )
    pids = set(pattern.findall(hub.log()))
    return pids if len(pids) >= 2 else None
