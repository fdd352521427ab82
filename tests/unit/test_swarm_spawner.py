"""The swarm spawner's pure parts: service names and settings (the engine: tests/integration)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from docker.errors import APIError
from docker.models.nodes import Node

from app.config import MAX_SWARM_PREFIX, SERVICE_NAME_RE, ConfigError, load
from app.spawners import docker as docker_spawner
from app.spawners import swarm
from app.spawners.swarm import SERVICE_NAME_MAX, SwarmSpawner

PREFIX = "p" * MAX_SWARM_PREFIX


def service_name(user: str, server: str = "", prefix: str = "flaskhub") -> str:
    settings = load(environ={}, overrides={"spawner": "swarm", "docker_prefix": prefix})
    spawner = SwarmSpawner(
        user_name=user, server_name=server, service_prefix="/", settings=settings, storage_id="s"
    )
    return spawner.service_name


@pytest.mark.parametrize(
    ("user", "server", "expected"),
    [
        ("alice", "", "flaskhub-alice"),
        ("a.b-c", "", "flaskhub-a_2eb_2dc"),
        ("alice", "lab", "flaskhub-alice_7elab"),
        ("zoë", "", "flaskhub-zo_c3_ab"),
    ],
)
def test_service_names_escape_all_but_letters_and_digits(
    user: str, server: str, expected: str
) -> None:
    assert service_name(user, server) == expected


@pytest.mark.parametrize("user", ["bob-", "a.b", "x" * 300, "_", "ü" * 40])
def test_service_names_are_dns_labels_even_with_the_longest_prefix(user: str) -> None:
    name = service_name(user, prefix=PREFIX)
    assert SERVICE_NAME_RE.fullmatch(name) and len(name) <= SERVICE_NAME_MAX


def test_long_service_names_never_collide() -> None:
    names = {service_name("x" * 300, prefix=PREFIX), service_name("x" * 299 + "y", prefix=PREFIX)}
    assert len(names) == 2


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"spawner": "swarm", "docker_prefix": "a.b"}, "docker_prefix"),
        ({"spawner": "swarm", "docker_prefix": PREFIX + "p"}, "docker_prefix"),
        ({"mem_guarantee": "some"}, "mem_guarantee"),
        ({"cpu_guarantee": -0.5}, "cpu_guarantee"),
        ({"swarm_placement": ["node.role"]}, "swarm_placement"),
        ({"swarm_placement": [1]}, "swarm_placement"),
        ({"swarm_address": "ingress"}, "swarm_address"),
        ({"spawner": "swarm", "swarm_address": "network"}, "hub_connect_ip"),
        ({"spawner": "swarm", "swarm_address": "published"}, "ip"),
        ({"spawner": "swarm", "swarm_address": "published", "ip": "localhost"}, "ip"),
        # Debian's address of the host's own name: loopback too.
        ({"spawner": "swarm", "swarm_address": "published", "ip": "127.0.1.1"}, "ip"),
        ({"spawner": "swarm", "swarm_address": "published", "ip": "::1"}, "ip"),
        (
            {
                "spawner": "swarm",
                "swarm_address": "published",
                "ip": "0.0.0.0",
                "docker_network": "u",
            },
            "docker_network",
        ),
        ({"swarm_proxy_port": 65536}, "swarm_proxy_port"),
        ({"swarm_proxy_port": -1}, "swarm_proxy_port"),
    ],
)
def test_bad_swarm_settings_are_refused(overrides: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigError, match=f"'{named}'"):
        load(environ={}, overrides=overrides)


def test_a_docker_prefix_with_a_dot_is_fine_for_the_docker_spawner() -> None:
    assert load(environ={}, overrides={"docker_prefix": "a.b"}).docker_prefix == "a.b"


class FakeNodes:
    """The engine's node list, as the SDK gives it (a double of the engine's answers)."""

    def __init__(self, *nodes: dict[str, Any]) -> None:
        self.nodes = [Node(attrs=attrs) for attrs in nodes]
        self.calls = 0

    def list(self) -> list[Node]:
        self.calls += 1
        return self.nodes


def node(node_id: str, state: str = "ready", availability: str = "active") -> dict[str, Any]:
    return {
        "ID": node_id,
        "Description": {"Hostname": f"host-{node_id}"},
        "Status": {"State": state},
        "Spec": {"Availability": availability},
    }


def task(node_id: str, created: str) -> dict[str, Any]:
    return {"NodeID": node_id, "CreatedAt": created, "Status": {"State": "running"}}


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """A fake client's nodes: n1 ready, n2 down, n3 drained, n4 unknown; fresh per test."""
    monkeypatch.setattr(swarm, "_nodes_seen", {})
    monkeypatch.setattr(swarm, "_nodes_told", {})
    nodes = FakeNodes(
        node("n1"), node("n2", "down"), node("n3", availability="drain"), node("n4", "unknown")
    )
    client = SimpleNamespace(nodes=nodes)
    monkeypatch.setattr(swarm, "docker_client", lambda: client)
    monkeypatch.setattr(docker_spawner, "docker_client", lambda: client)
    return client


def test_lost_nodes_are_those_not_ready_or_drained_looked_up_once_per_check(
    engine: SimpleNamespace,
) -> None:
    lost = swarm.lost_nodes(engine)
    assert lost == {
        "n2": "(host-n2) is down",
        "n3": "(host-n3) was drained",
        "n4": "(host-n4) is unknown",
    }
    swarm.lost_nodes(engine)
    assert engine.nodes.calls == 1
    swarm.lost_nodes(engine, fresh=True)
    assert engine.nodes.calls == 2


def test_the_loop_is_told_once_of_each_newly_lost_node(engine: SimpleNamespace) -> None:
    settings = load(environ={}, overrides={"spawner": "swarm"})
    assert SwarmSpawner.machines_changed(settings) is True
    assert SwarmSpawner.machines_changed(settings) is False
    engine.nodes.nodes.append(Node(attrs=node("n5", "down")))
    swarm._nodes_seen.clear()
    assert SwarmSpawner.machines_changed(settings) is True


@pytest.mark.parametrize(
    ("tasks", "why"),
    [
        ([task("n1", "1")], ""),
        ([task("n2", "1")], "the machine it ran on (host-n2) is down"),
        ([task("n3", "1")], "the machine it ran on (host-n3) was drained"),
        # A second task: the swarm started it again elsewhere, away from its home.
        ([task("n1", "2"), task("n2", "1")], "the machine it ran on (host-n2) is down"),
        ([task("n1", "1"), task("n1", "2")], "the swarm moved it to another machine"),
        ([], ""),
    ],
)
def test_a_server_is_lost_with_its_first_tasks_node_or_a_second_task(
    engine: SimpleNamespace, tasks: list[dict[str, Any]], why: str
) -> None:
    settings = load(environ={}, overrides={"spawner": "swarm"})
    spawner = SwarmSpawner(
        user_name="u", server_name="", service_prefix="/", settings=settings, storage_id="s"
    )
    assert spawner._lost(tasks) == why


@pytest.mark.parametrize(
    ("avoided", "home", "left"),
    [
        ({"n1": "node host-n1"}, "", False),  # n2 down, n3 drained, n4 unknown: none left
        ({}, "", True),
        ({"n1": "node host-n1"}, "n1", False),  # the home is there: nowhere else
    ],
)
def test_a_missing_image_is_tried_on_another_node_only_where_one_can_take_it(
    engine: SimpleNamespace, avoided: dict[str, str], home: str, left: bool
) -> None:
    settings = load(environ={}, overrides={"spawner": "swarm"})
    spawner = SwarmSpawner(
        user_name="u", server_name="", service_prefix="/", settings=settings, storage_id="s"
    )
    spawner.home_node = home
    assert spawner._nodes_left(avoided) is left
    engine.nodes.nodes.append(Node(attrs=node("n5")))
    swarm._nodes_seen.clear()
    assert spawner._nodes_left(avoided) is (not home)


def test_an_engine_that_does_not_answer_is_asked_again_only_after_a_node_check(
    engine: SimpleNamespace,
) -> None:
    calls = []

    def down() -> list[Node]:
        calls.append(1)
        raise APIError("the engine is restarting")

    engine.nodes.list = down
    settings = load(environ={}, overrides={"spawner": "swarm"})
    assert SwarmSpawner.machines_changed(settings) is False
    assert SwarmSpawner.machines_changed(settings) is False
    assert len(calls) == 1


def published(**overrides: Any) -> SwarmSpawner:
    settings = load(
        environ={},
        overrides={"spawner": "swarm", "swarm_address": "published", "ip": "0.0.0.0", **overrides},
    )
    return SwarmSpawner(
        user_name="ann", server_name="", service_prefix="/", settings=settings, storage_id="s"
    )


def test_published_mode_servers_reach_the_hub_through_the_proxy_on_their_node() -> None:
    # The proxy's port on the node (host-gateway: that node's own host), never the hub's.
    assert published().hub_connect_url() == "http://host.docker.internal:8000"
    assert published(swarm_proxy_port=80).hub_connect_url() == "http://host.docker.internal:80"
    assert published().hosts() == {"host.docker.internal": "host-gateway"}
    assert SwarmSpawner.hub_connect_ips(published().settings) == []
    # The proxy the stack runs itself: any address it listens on is the operator's.
    assert published(ip="127.0.0.1", proxy_auto_start=False).hub_connect_url()
    # Set by the operator (a load balancer in front), server_hub_url wins.
    through = published(server_hub_url="https://hub.example.org")
    assert through.hub_connect_url() == "https://hub.example.org"


def test_published_mode_publishes_the_server_port_in_host_mode_at_a_port_the_engine_picks() -> None:
    spec = published(docker_port=8888).endpoint_spec()
    assert spec == {
        "Mode": "dnsrr",
        "Ports": [{"Protocol": "tcp", "TargetPort": 8888, "PublishMode": "host"}],
    }
    gwbridge = published(swarm_address="docker_gwbridge", ip="127.0.0.1")
    assert gwbridge.endpoint_spec() == {"Mode": "dnsrr"} and gwbridge.hosts() is None


@pytest.mark.parametrize(
    ("attrs", "address"),
    [
        ({"Status": {"Addr": "10.0.0.7"}}, "10.0.0.7"),
        # A manager may advertise 0.0.0.0 in its status: its manager address says where.
        ({"Status": {"Addr": "0.0.0.0"}, "ManagerStatus": {"Addr": "10.0.0.5:2377"}}, "10.0.0.5"),
        ({"Status": {}, "ManagerStatus": {"Addr": "[fd00::5]:2377"}}, "fd00::5"),
        ({"Status": {}}, ""),
    ],
)
def test_a_nodes_address_is_the_one_it_advertises(attrs: dict[str, Any], address: str) -> None:
    assert swarm.node_address(Node(attrs={"ID": "n", **attrs})) == address


def test_the_published_port_is_the_one_for_the_server_port() -> None:
    ports = [
        {"Protocol": "tcp", "TargetPort": 22, "PublishedPort": 30001, "PublishMode": "host"},
        {"Protocol": "tcp", "TargetPort": 8888, "PublishedPort": 30002, "PublishMode": "host"},
    ]
    assert swarm.published_port({"Status": {"PortStatus": {"Ports": ports}}}, 8888) == 30002
    assert swarm.published_port({"Status": {}}, 8888) == 0
