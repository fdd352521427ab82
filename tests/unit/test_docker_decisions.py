"""The docker and swarm spawners' decisions against a fake engine (the real one:
tests/integration): names, volumes keyed by the user's stable id, labels, and what a
leftover of the name may be."""

from __future__ import annotations

import os
from types import SimpleNamespace
from typing import Any

import pytest
from docker.errors import APIError, NotFound

from app.config import ConfigError, load
from app.spawners import compose
from app.spawners import docker as docker_module
from app.spawners.base import SpawnerError
from app.spawners.docker import LABEL_HUB, LABEL_SERVER, LABEL_STORAGE, LABEL_USER, DockerSpawner
from app.spawners.swarm import SwarmSpawner


@pytest.fixture(autouse=True)
def hub_on_the_host(monkeypatch: pytest.MonkeyPatch) -> None:
    """The hub runs in no compose project, as the fake engines have it (not asked)."""
    monkeypatch.setattr(compose, "_hub_project", {os.getpid(): None})


def spawner(
    user: str, storage_id: str, kind: type[DockerSpawner] = DockerSpawner, **settings: Any
) -> DockerSpawner:
    name = "swarm" if kind is SwarmSpawner else "docker"
    loaded = load(environ={}, overrides={"spawner": name, **settings})
    return kind(
        user_name=user, server_name="", service_prefix="/", settings=loaded, storage_id=storage_id
    )


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


class Recorder:
    """An engine collection that records what it was asked to create."""

    def __init__(self, made: Any = None) -> None:
        self.created: list[dict[str, Any]] = []
        self.made = made

    def create(self, *args: Any, **kwargs: Any) -> Any:
        self.created.append({"args": args, **kwargs})
        return self.made


class FakeObjects:
    """The engine's containers or services by name."""

    def __init__(self, **by_name: dict[str, str]) -> None:
        self.by_name = {name: FakeObject(labels) for name, labels in by_name.items()}

    def get(self, name: str) -> FakeObject:
        if name not in self.by_name:
            raise NotFound(name)
        return self.by_name[name]


class FakeObject:
    """A container (its labels) or a service (its labels in its spec)."""

    def __init__(self, labels: dict[str, str]) -> None:
        self.labels = labels
        self.attrs = {"Spec": {"Labels": labels}}
        self.removed = False

    def remove(self, force: bool = False) -> None:
        self.removed = True


SPAWNERS = pytest.mark.parametrize("kind", [DockerSpawner, SwarmSpawner])


def name_of(spawner: DockerSpawner) -> str:
    """The name of the server's container (docker) or service (swarm)."""
    return spawner.service_name if isinstance(spawner, SwarmSpawner) else spawner.container_name


def with_leftover(
    spawner: DockerSpawner, monkeypatch: pytest.MonkeyPatch, labels: dict[str, str] | None
) -> FakeObject | None:
    """An engine where a container and a service of the server's name carry `labels`."""
    found = {} if labels is None else {name_of(spawner): labels}
    engine = SimpleNamespace(containers=FakeObjects(**found), services=FakeObjects(**found))
    monkeypatch.setattr(DockerSpawner, "client", property(lambda _self: engine))
    objects = engine.services if isinstance(spawner, SwarmSpawner) else engine.containers
    return objects.by_name.get(name_of(spawner))


@SPAWNERS
def test_a_leftover_of_this_server_is_removed(
    monkeypatch: pytest.MonkeyPatch, kind: type[DockerSpawner]
) -> None:
    alice = spawner("alice", "sid-1", kind)
    left = with_leftover(alice, monkeypatch, alice.labels())
    alice._remove_leftover()
    assert left is not None and left.removed


@SPAWNERS
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
    monkeypatch: pytest.MonkeyPatch, labels: dict[str, str], kind: type[DockerSpawner]
) -> None:
    alice = spawner("alice", "sid-1", kind)
    theirs = with_leftover(alice, monkeypatch, labels)
    with pytest.raises(SpawnerError) as refused:
        alice._remove_leftover()
    assert refused.value.status == 409 and theirs is not None and not theirs.removed
    what = "service" if kind is SwarmSpawner else "container"
    assert f"a Docker {what} named flaskhub-alice already exists" in str(refused.value)


@SPAWNERS
def test_no_leftover_is_nothing_to_do(
    monkeypatch: pytest.MonkeyPatch, kind: type[DockerSpawner]
) -> None:
    alice = spawner("alice", "sid-1", kind)
    with_leftover(alice, monkeypatch, None)
    alice._remove_leftover()


def test_a_container_is_made_with_the_home_volume_of_the_stable_id(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    renamed = spawner("alicia", "sid-1", docker_volumes={"data-{storage_id}": "/data:ro"})
    engine = container_engine(monkeypatch)
    assert renamed._create() == "container"
    assert engine.volumes.created == [
        {"args": (), "name": "flaskhub-home-sid-1", "labels": renamed.labels()}
    ]
    [container] = engine.containers.created
    assert container["name"] == "flaskhub-alicia" and container["labels"] == renamed.labels()
    assert container["volumes"] == {
        "flaskhub-home-sid-1": {"bind": "/home/jovyan", "mode": "rw"},
        "data-sid-1": {"bind": "/data", "mode": "ro"},
    }


@pytest.mark.parametrize("driver", ["", "nfs-driver"])
def test_a_service_mounts_the_home_volume_of_the_stable_id(
    monkeypatch: pytest.MonkeyPatch, driver: str
) -> None:
    renamed = spawner(
        "alicia",
        "sid-1",
        SwarmSpawner,
        swarm_volume_driver=driver,
        docker_volumes={"data-{storage_id}": "/data:ro", "/srv/shared": "/shared"},
    )
    engine = SimpleNamespace(services=Recorder("service"))
    monkeypatch.setattr(DockerSpawner, "client", property(lambda _self: engine))
    monkeypatch.setattr(SwarmSpawner, "task_network", SimpleNamespace(name="net"))
    assert renamed._create() == "service"
    [service] = engine.services.created
    assert service["name"] == "flaskhub-alicia"
    assert service["labels"] == service["container_labels"] == renamed.labels()
    home, data, shared = service["mounts"]
    assert (home["Source"], home["Target"], home["Type"]) == (
        "flaskhub-home-sid-1",
        "/home/jovyan",
        "volume",
    )
    # The home volume is made by the task's node: with the labels, and the shared driver.
    assert home["VolumeOptions"]["Labels"] == renamed.labels()
    assert home["VolumeOptions"].get("DriverConfig", {}).get("Name", "") == driver
    assert (data["Source"], data["ReadOnly"], "Labels" in data.get("VolumeOptions", {})) == (
        "data-sid-1",
        True,
        False,
    )
    assert (shared["Source"], shared["Type"]) == ("/srv/shared", "bind")


@pytest.mark.parametrize(("keep", "removed"), [(False, ["flaskhub-home-sid-1"]), (True, [])])
def test_deleting_a_user_removes_the_volume_of_their_stable_id_unless_files_are_kept(
    monkeypatch: pytest.MonkeyPatch, keep: bool, removed: list[str]
) -> None:
    gone: list[str] = []
    volume = SimpleNamespace(remove=lambda: gone.append("flaskhub-home-sid-1"))
    engine = SimpleNamespace(volumes=SimpleNamespace(get={"flaskhub-home-sid-1": volume}.get))
    monkeypatch.setattr(DockerSpawner, "client", property(lambda _self: engine))
    spawner("alicia", "sid-1", keep_user_files=keep).delete_forever()
    assert gone == removed


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


def container_engine(monkeypatch: pytest.MonkeyPatch, driver: str = "cgroupfs") -> Any:
    """An engine that records the volumes and containers it makes; `info` counts its asks."""
    asked = []
    engine = SimpleNamespace(
        volumes=Recorder(),
        containers=Recorder("container"),
        info=lambda: asked.append(1) or {"CgroupDriver": driver, "ServerVersion": "28.2.2"},
        asked=asked,
    )
    monkeypatch.setattr(DockerSpawner, "client", property(lambda _self: engine))
    monkeypatch.setattr(docker_module, "ensure_network", lambda *_: SimpleNamespace(name="net"))
    return engine


@pytest.mark.parametrize(
    ("driver", "parent"), [("cgroupfs", "/flaskhub-servers"), ("systemd", "flaskhub-servers.slice")]
)
def test_containers_go_in_the_servers_group_named_for_the_engines_cgroup_driver(
    monkeypatch: pytest.MonkeyPatch, driver: str, parent: str
) -> None:
    engine = container_engine(monkeypatch, driver)
    spawner("alice", "sid-1")._create()
    spawner("bob", "sid-2")._create()
    assert [c["cgroup_parent"] for c in engine.containers.created] == [parent, parent]
    assert [c["cpu_shares"] for c in engine.containers.created] == [110, 110]
    assert len(engine.asked) == 1  # the driver is asked once per process


def test_an_engine_refusing_the_group_says_how_to_do_without(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = container_engine(monkeypatch)

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise APIError("500", explanation="cgroup-parent for systemd cgroup should be a slice")

    engine.containers.create = refuse
    with pytest.raises(SpawnerError, match="cgroup should be a slice.*set server_cgroup empty"):
        spawner("alice", "sid-1")._create()


@pytest.mark.parametrize("settings", [{"server_cgroup": ""}, {"server_nice": 0}])
def test_containers_are_in_no_group_of_ours_without_a_name_or_at_nice_0(
    monkeypatch: pytest.MonkeyPatch, settings: dict[str, Any]
) -> None:
    engine = container_engine(monkeypatch)
    spawner("alice", "sid-1", **settings)._create()
    [container] = engine.containers.created
    assert container["cgroup_parent"] is None
    assert engine.asked == []


@pytest.mark.parametrize(("nice", "weight"), [(0, None), (1, 819), (10, 110), (19, 15)])
def test_server_nice_is_the_kernels_cpu_weight_for_containers(nice: int, weight: int) -> None:
    # The kernel's sched_prio_to_weight: nice 10 weighs 110, nice 19 15, against 1024.
    assert docker_module.cpu_weight(nice) == weight


@pytest.mark.parametrize("nice", [20, -1])
def test_server_nice_out_of_range_is_refused(nice: int) -> None:
    with pytest.raises(ConfigError, match="'server_nice'"):
        load(environ={}, overrides={"server_nice": nice})


def in_project(monkeypatch: pytest.MonkeyPatch, project: str, *networks: Any) -> Any:
    """The hub in a container of compose project `project`; an engine with `networks`."""
    monkeypatch.setattr(compose, "_hub_project", {os.getpid(): project})

    def listed(filters: dict[str, list[str]]) -> list[Any]:
        wanted = dict(label.split("=", 1) for label in filters["label"])
        return [n for n in networks if wanted.items() <= n.attrs["Labels"].items()]

    by_id = {n.id: n for n in networks}
    return SimpleNamespace(networks=SimpleNamespace(list=listed, get=by_id.__getitem__))


def compose_users(project: str, icc: str = "false", key: str = "users") -> Any:
    """A network compose made for project's `key` in the file."""
    labels = {compose.COMPOSE_PROJECT: project, compose.COMPOSE_NETWORK: key}
    return SimpleNamespace(
        id=f"{project}_{key}",
        name=f"{project}_{key}",
        attrs={
            "Name": f"{project}_{key}",
            "Driver": "bridge",
            "Labels": labels,
            "Options": {docker_module.ICC_OPTION: icc},
        },
    )


def test_in_a_compose_project_the_names_and_the_way_out_are_the_project_s(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Another project's `users` and this project's `backend` are not the way out.
    ours = compose_users("lab2")
    engine = in_project(
        monkeypatch, "lab2", compose_users("lab1"), compose_users("lab2", key="backend"), ours
    )
    settings = load(environ={}, overrides={"spawner": "docker"})
    assert compose.hub_prefix(engine, settings) == "lab2"
    assert docker_module.ensure_network(engine, settings) is ours
    alice = spawner("alice", "sid-1")
    monkeypatch.setattr(DockerSpawner, "client", property(lambda _self: engine))
    assert (alice.container_name, alice.volume_name) == ("lab2-alice", "lab2-home-sid-1")
    assert alice.labels()[LABEL_HUB] == "lab2" and alice.network_name == "lab2_users"
    # Set, the settings win.
    named = load(environ={}, overrides={"docker_prefix": "site", "docker_network": "site-out"})
    assert compose.hub_prefix(engine, named) == "site"
    assert compose.compose_network(engine, named) is None


def test_a_compose_users_network_where_containers_reach_each_other_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = in_project(monkeypatch, "lab2", compose_users("lab2", icc="true"))
    with pytest.raises(SpawnerError) as refused:
        docker_module.ensure_network(engine, load(environ={}, overrides={}))
    message = str(refused.value)
    assert "lab2_users (network users of the hub's compose project) lets containers" in message
    assert 'enable_icc: "false" in the compose file' in message


def test_a_project_name_that_cannot_start_service_names_asks_for_docker_prefix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Compose accepts a trailing _; a swarm service name does not.
    engine = in_project(monkeypatch, "lab_")
    assert compose.hub_prefix(engine, load(environ={}, overrides={})) == "lab_"
    with pytest.raises(SpawnerError, match="named 'lab_'.*set docker_prefix"):
        compose.hub_prefix(engine, load(environ={}, overrides={"spawner": "swarm"}))


def test_server_hub_url_is_where_servers_reach_the_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    # The stack's servers go through CHP, whose addresses outlive the hub's tasks.
    monkeypatch.setattr(DockerSpawner, "gateway", lambda _self: "172.17.0.1")
    assert spawner("ann", "s1").hub_connect_url() == "http://172.17.0.1:8081"
    assert spawner("ann", "s1", hub_connect_ip="hub").hub_connect_url() == "http://hub:8081"
    through = spawner("ann", "s1", hub_connect_ip="hub", server_hub_url="http://proxy:8000/")
    assert through.hub_connect_url() == "http://proxy:8000"


@pytest.mark.parametrize("value", ["proxy:8000", "http://proxy:8000/hub", "ftp://proxy", "http://"])
def test_server_hub_url_must_be_an_origin(value: str) -> None:
    with pytest.raises(ConfigError, match="server_hub_url.*http://proxy:8000"):
        load(environ={}, overrides={"server_hub_url": value})


def test_a_spawn_asks_the_engine_for_its_network_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # The API URL (the network's gateway), the container's network and each look at
    # its address all need the network: one lookup serves them all.
    asked: list[str] = []
    users = SimpleNamespace(
        id="n1",
        name="flaskhub",
        attrs={
            "Driver": "bridge",
            "Labels": {LABEL_HUB: "flaskhub"},
            "Options": {"com.docker.network.bridge.enable_icc": "false"},
            "IPAM": {"Config": [{"Subnet": "172.30.0.0/16", "Gateway": "172.30.0.1"}]},
        },
    )
    created = SimpleNamespace(id="c1")
    engine = SimpleNamespace(
        networks=SimpleNamespace(get=lambda name: asked.append(name) or users),
        volumes=SimpleNamespace(create=lambda **kw: None),
        containers=SimpleNamespace(create=lambda image, **kw: created if kw["network"] else None),
        info=lambda: {"CgroupDriver": "cgroupfs"},  # once per process, not per spawn
    )
    ann = spawner("ann", "s1")
    monkeypatch.setattr(DockerSpawner, "client", property(lambda _self: engine))
    assert ann.hub_connect_url() == "http://172.30.0.1:8081"
    assert ann._create() is created
    container = SimpleNamespace(
        attrs={"NetworkSettings": {"Networks": {"flaskhub": {"IPAddress": "172.30.0.5"}}}}
    )
    assert [ann._ip(container) for _ in range(3)] == ["172.30.0.5"] * 3
    assert asked == ["flaskhub"]
