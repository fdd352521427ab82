"""The swarm spawner's pure parts: service names and settings (the engine: tests/integration)."""

from __future__ import annotations

from typing import Any

import pytest

from app.config import MAX_SWARM_PREFIX, SERVICE_NAME_RE, ConfigError, load
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
    ],
)
def test_bad_swarm_settings_are_refused(overrides: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigError, match=f"'{named}'"):
        load(environ={}, overrides=overrides)


def test_a_docker_prefix_with_a_dot_is_fine_for_the_docker_spawner() -> None:
    assert load(environ={}, overrides={"docker_prefix": "a.b"}).docker_prefix == "a.b"
