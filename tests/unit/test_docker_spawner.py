"""The docker spawner's pure parts: names and settings (the engine: tests/integration)."""

from __future__ import annotations

import itertools
from ipaddress import IPv4Network
from typing import Any

import pytest

from app.config import DOCKER_NAME_RE, ConfigError, load
from app.spawners.docker import MAX_NAME_PART, candidate_subnets, safe_name
from app.spawners.swarm import SwarmSpawner


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("alice", "alice"),
        ("a.b-c", "a.b-c"),
        ("alice~lab", "alice_7elab"),
        ("a_b", "a_5fb"),
        ("zoë", "zo_c3_ab"),
    ],
)
def test_safe_name_escapes_what_docker_refuses(text: str, expected: str) -> None:
    assert safe_name(text) == expected
    assert DOCKER_NAME_RE.fullmatch(f"flaskhub-{safe_name(text)}")


def test_safe_names_never_collide() -> None:
    # The escape character itself is escaped: "a_7eb" and "a~b" stay apart.
    texts = ["a~b", "a_7eb", "a_b", "a-b", "x" * 300, "x" * 299 + "y"]
    names = [safe_name(t) for t in texts]
    assert len(set(names)) == len(texts)
    assert all(len(n) <= MAX_NAME_PART for n in names)


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"docker_prefix": "-bad"}, "docker_prefix"),
        ({"docker_network": "a b"}, "docker_network"),
        ({"docker_cmd": ["ok", 1]}, "docker_cmd"),
        ({"docker_env": {"A": 1}}, "docker_env"),
        ({"docker_volumes": {"v": ["/x"]}}, "docker_volumes"),
        ({"docker_port": 70000}, "docker_port"),
        ({"mem_limit": "lots"}, "mem_limit"),
        ({"cpu_limit": -1}, "cpu_limit"),
        ({"pids_limit": -2}, "pids_limit"),
        ({"docker_attach": ["service:"]}, "docker_attach"),
        ({"docker_attach": ["proxy; rm"]}, "docker_attach"),
        ({"docker_attach": [1]}, "docker_attach"),
        ({"docker_server_subnets": "10.0.0.0/29"}, "docker_server_subnets"),
        ({"docker_server_subnets": "fd00::/48"}, "docker_server_subnets"),
        ({"docker_server_subnets": "10.0.0.1/16"}, "docker_server_subnets"),
        ({"docker_attach": ["proxy"], "spawner": "docker"}, "hub_connect_ip"),
        (
            {
                "spawner": "docker",
                "docker_attach": ["p"],
                "docker_network": "n",
                "hub_connect_ip": "h",
            },
            "docker_network",
        ),
    ],
)
def test_bad_docker_settings_are_refused(overrides: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigError, match=f"'{named}'"):
        load(environ={}, overrides=overrides)


def test_docker_settings_defaults() -> None:
    settings = load(environ={}, overrides={"mem_limit": "512M", "cpu_limit": 1})
    assert settings.mem_limit == "512M" and settings.cpu_limit == 1.0
    assert settings.docker_image.startswith("flaskhub/singleuser:")
    assert settings.pids_limit == 1024


@pytest.mark.parametrize(("setting", "limit"), [(1024, 1024), (1, 1), (0, None), (-1, None)])
def test_pids_limit_0_or_minus_1_is_no_limit(setting: int, limit: int | None) -> None:
    settings = load(environ={}, overrides={"pids_limit": setting})
    spawner = SwarmSpawner(
        user_name="ann",
        server_name="",
        service_prefix="/user/ann/",
        settings=settings,
        storage_id="0" * 32,
    )
    assert spawner.pids_limit() == limit
    assert spawner.resources().get("Limits", {}).get("Pids") == limit


def test_servers_own_networks_are_distinct_28s_of_the_range_from_a_place_their_name_picks() -> None:
    tried = list(candidate_subnets("10.213.0.0/16", "flaskhub-alice-net"))
    assert len(tried) == 64 and len(set(tried)) == 64
    assert all(t.prefixlen == 28 and t.subnet_of(IPv4Network("10.213.0.0/16")) for t in tried)
    # Consecutive, wrapping at the end of the range.
    assert all(
        int(b.network_address) - int(a.network_address) in (16, 16 - 65536)
        for a, b in itertools.pairwise(tried)
    )
    assert tried[0] != next(candidate_subnets("10.213.0.0/16", "flaskhub-bob-net"))
    # A range of two /28s is tried twice over at most, never beyond it.
    small = list(candidate_subnets("192.168.5.0/27", "x"))
    assert sorted(map(str, small)) == ["192.168.5.0/28", "192.168.5.16/28"]


def test_docker_attach_is_valid_with_hub_connect_ip() -> None:
    settings = load(
        environ={},
        overrides={
            "spawner": "docker",
            "docker_attach": ["service:hub", "proxy-1"],
            "hub_connect_ip": "hub",
        },
    )
    assert settings.docker_attach == ["service:hub", "proxy-1"]
    assert settings.docker_server_subnets == "10.213.0.0/16"
