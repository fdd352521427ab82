"""The docker spawner's decisions against a fake engine (the real one: tests/integration):
volumes keyed by the user's stable id, labels, and what a leftover of the name may be."""

from __future__ import annotations

import os
from types import SimpleNamespace
from typing import Any

import pytest
from docker.errors import NotFound

from app.config import ConfigError, load
from app.spawners import compose
from app.spawners import docker as docker_module
from app.spawners.base import SpawnerError
from app.spawners.docker import LABEL_HUB, LABEL_SERVER, LABEL_STORAGE, LABEL_USER, DockerSpawner


class FakeContainer:
    def __init__(self, labels: dict[str, str]) -> None:
        self.labels = labels
        self.removed = False

    def remove(self, force: bool = False) -> None:
        self.removed = force


class FakeContainers:
    """The engine's containers by name (a double of the engine's answers)."""

    def __init__(self, **by_name: FakeContainer) -> None:
        self.by_name = by_name

    def get(self, name: str) -> FakeContainer:
        if name not in self.by_name:
            raise NotFound(name)
        return self.by_name[name]


@pytest.fixture(autouse=True)
def hub_on_the_host(monkeypatch: pytest.MonkeyPatch) -> None:
    """The hub runs in no compose project, as the fake engines have it (not asked)."""
    monkeypatch.setattr(compose, "_hub_project", {os.getpid(): None})


def spawner(user: str, storage_id: str, **settings: Any) -> DockerSpawner:
    loaded = load(environ={}, overrides={"spawner": "docker", **settings})
    return DockerSpawner(
        user_name=user, server_name="", service_prefix="/", settings=loaded, storage_id=storage_id
    )


def with_engine(spawner: DockerSpawner, monkeypatch: pytest.MonkeyPatch, **containers: Any) -> None:
    engine = SimpleNamespace(containers=FakeContainers(**containers))
    monkeypatch.setattr(DockerSpawner, "client", property(lambda _self: engine))


def test_the_home_volume_follows_the_stable_id_not_the_name() -> None:
    alice = spawner("alice", "sid-1")
    renamed = spawner("alicia", "sid-1")
    new_alice = spawner("alice", "sid-2")
    assert alice.volume_name == renamed.volume_name == "flaskhub-home-sid-1"
    assert new_alice.volume_name != alice.volume_name
    # And in docker_volumes: {storage_id} is the stable id, {username} the name.
    shared = spawner("alice", "sid-1", docker_volumes={"data-{storage_id}": "/data"})
    assert shared.mounts()["data-sid-1"] == {"bind": "/data", "mode": "rw"}


def test_labels_name_the_hub_the_stable_id_and_the_server() -> None:
    labels = spawner("alice", "sid-1", docker_prefix="site").labels()
    assert labels == {
        LABEL_USER: "alice",
        LABEL_STORAGE: "sid-1",
        LABEL_SERVER: "",
        LABEL_HUB: "site",
    }


def test_a_leftover_of_this_server_is_removed(monkeypatch: pytest.MonkeyPatch) -> None:
    alice = spawner("alice", "sid-1")
    left = FakeContainer(alice.labels())
    with_engine(alice, monkeypatch, **{"flaskhub-alice": left})
    alice._remove_leftover()
    assert left.removed


@pytest.mark.parametrize(
    "labels",
    [
        {},  # the operator's own container of that name
        {LABEL_HUB: "other-hub", LABEL_STORAGE: "sid-1", LABEL_SERVER: ""},
        # A former user of the name (renamed away, or deleted): another stable id.
        {LABEL_HUB: "flaskhub", LABEL_STORAGE: "sid-0", LABEL_SERVER: "", LABEL_USER: "alice"},
        {LABEL_HUB: "flaskhub", LABEL_STORAGE: "sid-1", LABEL_SERVER: "lab"},
    ],
)
def test_a_container_of_the_name_that_is_not_this_servers_fails_the_spawn_and_is_kept(
    monkeypatch: pytest.MonkeyPatch, labels: dict[str, str]
) -> None:
    alice = spawner("alice", "sid-1")
    theirs = FakeContainer(labels)
    with_engine(alice, monkeypatch, **{"flaskhub-alice": theirs})
    with pytest.raises(SpawnerError) as refused:
        alice._remove_leftover()
    assert refused.value.status == 409 and not theirs.removed
    assert "a Docker container named flaskhub-alice already exists" in str(refused.value)


def test_no_leftover_is_nothing_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    alice = spawner("alice", "sid-1")
    with_engine(alice, monkeypatch)
    alice._remove_leftover()


class FakeNetwork:
    def __init__(self, name: str, internal: bool, members: list[str]) -> None:
        self.id = self.name = name
        self.attrs = {"Internal": internal, "Containers": {m: {} for m in members}}
        self.connected: list[tuple[str, list[str]]] = []

    def connect(self, container: Any, aliases: list[str]) -> None:
        self.connected.append((container.id, aliases))


def test_repair_joins_the_attached_containers_where_they_are_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The proxy was re-created: its new container is on neither server's network.
    proxy = SimpleNamespace(id="proxy-2", name="site_proxy_1")
    networks = [
        FakeNetwork("flaskhub-ann-net", True, ["ann", "hub-1", "proxy-1"]),
        FakeNetwork("flaskhub-ben-net", True, ["ben", "hub-1", "proxy-2"]),
        FakeNetwork("flaskhub", False, []),  # the way out: never joined
    ]
    engine = SimpleNamespace(
        networks=SimpleNamespace(
            list=lambda filters: networks, get=lambda id: next(n for n in networks if n.id == id)
        ),
        containers=SimpleNamespace(get=lambda name: {"site_proxy_1": proxy}[name]),
    )
    monkeypatch.setattr(docker_module, "docker_client", lambda: engine)
    settings = load(
        environ={},
        overrides={"spawner": "docker", "docker_attach": ["site_proxy_1"], "hub_connect_ip": "h"},
    )
    DockerSpawner.repair(settings)
    assert networks[0].connected == [("proxy-2", ["site_proxy_1"])]
    assert networks[1].connected == [] and networks[2].connected == []


@pytest.mark.parametrize(("nice", "weight"), [(0, None), (1, 819), (10, 110), (19, 15)])
def test_server_nice_is_the_kernels_cpu_weight_for_containers(nice: int, weight: int) -> None:
    # The kernel's sched_prio_to_weight: nice 10 weighs 110, nice 19 15, against 1024.
    assert docker_module.cpu_weight(nice) == weight


@pytest.mark.parametrize("nice", [20, -1])
def test_server_nice_out_of_range_is_refused(nice: int) -> None:
    with pytest.raises(ConfigError, match="'server_nice'"):
        load(environ={}, overrides={"server_nice": nice})
