"""What only the docker spawner does, against a real engine: real containers, real CHP,
`flaskhub run` (what it does as the swarm spawner does: test_container_spawners.py).

The module's hub has its own docker_prefix, so its containers, volumes and
network are told apart by label and all removed at the end; it keeps servers
running when it stops (cleanup_servers = false), as a restart must.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any

import docker
import pytest
from docker.models.containers import Container

from app.spawners.docker import LABEL_HUB, LABEL_USER
from tests.integration.conftest import Hub, login
from tests.integration.docker_engine import (  # noqa: F401 (fixtures)
    BUILTIN_IMAGE,
    docker_client,
    docker_images,
    reaches_server,
    remove_labelled,
    run_in,
    spawn,
    stop,
)

pytestmark = [pytest.mark.integration, pytest.mark.docker]

PREFIX = f"fhtest-{secrets.token_hex(3)}"
SETTINGS: dict[str, Any] = {
    "spawner": "docker",
    "docker_prefix": PREFIX,
    "docker_image": BUILTIN_IMAGE,
    "cleanup_servers": False,
    "mem_limit": "256m",
    "cpu_limit": 0.5,
    "docker_env": {"GREETING": "hello"},
}
HOME = "/home/jovyan"


@pytest.fixture(scope="module")
def leftovers(docker_client: docker.DockerClient) -> Iterator[None]:  # noqa: F811
    """Remove what this module's hubs made (requested before the hubs: runs after them)."""
    yield
    remove_labelled(docker_client, PREFIX)


@pytest.fixture(scope="module")
def docker_hub(
    leftovers: None,
    docker_images: str,  # noqa: F811
    hub_factory: Callable[..., Hub],
) -> Hub:
    return hub_factory(**SETTINGS)


def container_of(client: docker.DockerClient, name: str) -> Container:
    return client.containers.get(f"{PREFIX}-{name}")


def test_spawn_through_the_browser_path_lands_in_the_container(docker_hub: Hub) -> None:
    # Start My Server, then the server's OAuth round trip with the hub (over the gateway).
    session = login(docker_hub, "frank")
    session.headers["Accept"] = "text/html"
    page = session.get(f"{docker_hub.public_url}/hub/spawn", timeout=60)
    assert page.status_code == 200, page.text
    assert page.url == f"{docker_hub.public_url}/user/frank/" and "frank" in page.text


def test_limits_and_a_network_where_containers_do_not_talk(
    docker_hub: Hub,
    docker_client: docker.DockerClient,  # noqa: F811
) -> None:
    spawn(docker_hub, "alice")
    attrs = container_of(docker_client, "alice").attrs
    assert attrs["HostConfig"]["Memory"] == 256 * 1024 * 1024
    assert attrs["HostConfig"]["NanoCpus"] == 500_000_000
    # server_nice 10: the CPU weight of nice 10 against the hub's 1024.
    assert attrs["HostConfig"]["CpuShares"] == 110
    # All user containers in one group on the engine's host (server_cgroup's default).
    parent = attrs["HostConfig"]["CgroupParent"]
    assert parent in ("/flaskhub-servers", "flaskhub-servers.slice")
    groups = Path(f"/proc/{attrs['State']['Pid']}/cgroup").read_text()
    cpu = [
        g
        for _, controllers, g in (line.split(":", 2) for line in groups.splitlines())
        if "cpu" in controllers.split(",") or not controllers
    ]
    assert cpu and all(g.startswith(f"/{parent.lstrip('/')}/") for g in cpu), groups
    options = docker_client.networks.get(PREFIX).attrs["Options"]
    assert options["com.docker.network.bridge.enable_icc"] == "false"


def test_a_leftover_of_a_renamed_user_is_not_a_new_user_of_that_name(
    leftovers: None,
    docker_client: docker.DockerClient,  # noqa: F811
    docker_images: str,  # noqa: F811
    hub_factory: Callable[..., Hub],
) -> None:
    hub = hub_factory(**{**SETTINGS, "docker_remove": False})
    spawn(hub, "rita")
    stop(hub, "rita")
    # docker_remove = false keeps it; the same user's next start replaces it.
    first = container_of(docker_client, "rita")
    spawn(hub, "rita")
    stop(hub, "rita")
    left = container_of(docker_client, "rita")
    assert left.id != first.id
    assert hub.api("PATCH", "/users/rita", json={"name": "rosa"}).status_code == 200
    hub.api("POST", "/users/rita")
    response = hub.api("POST", "/users/rita/server")
    assert response.status_code == 409, response.text
    assert f"a Docker container named {PREFIX}-rita already exists" in response.json()["message"]
    assert container_of(docker_client, "rita").id == left.id


@pytest.fixture
def foreign_network(docker_client: docker.DockerClient) -> Iterator[Callable[..., str]]:  # noqa: F811
    """Make networks with given labels and options; removed at the end."""
    made: list[Any] = []

    def make(name: str, **kwargs: Any) -> str:
        made.append(docker_client.networks.create(name, **kwargs))
        return name

    yield make
    for network in made:
        network.reload()
        # A failed test may leave its hub's containers on it: those are this module's.
        for container in network.containers:
            if container.labels.get(LABEL_HUB) == PREFIX:
                container.remove(force=True)
        network.remove()


@pytest.mark.parametrize(
    ("labels", "why"),
    [
        ({"test": PREFIX}, "this hub did not make it"),
        ({LABEL_HUB: f"{PREFIX}-n"}, "com.docker.network.bridge.enable_icc is not false"),
    ],
)
def test_a_network_of_the_name_where_containers_reach_each_other_is_refused(
    leftovers: None,
    docker_images: str,  # noqa: F811
    hub_factory: Callable[..., Hub],
    foreign_network: Callable[..., str],
    labels: dict[str, str],
    why: str,
) -> None:
    prefix = foreign_network(f"{PREFIX}-n", labels=labels)
    with pytest.raises(RuntimeError) as refused:
        hub_factory(**{**SETTINGS, "docker_prefix": prefix})
    assert f"Docker network {prefix} exists but" in str(refused.value)
    assert why in str(refused.value) and "docker network rm" in str(refused.value)


def test_a_network_named_in_docker_network_is_used_with_a_warning(
    leftovers: None,
    docker_images: str,  # noqa: F811
    hub_factory: Callable[..., Hub],
    foreign_network: Callable[..., str],
) -> None:
    network = foreign_network(f"{PREFIX}-shared", labels={"test": PREFIX})
    hub = hub_factory(**{**SETTINGS, "docker_network": network})
    spawn(hub, "sam")
    assert f"Docker network {network} (docker_network) is used although" in hub.log()
    stop(hub, "sam")


@pytest.fixture(scope="module")
def probe(
    leftovers: None,
    docker_images: str,  # noqa: F811
    docker_client: docker.DockerClient,  # noqa: F811
) -> Container:
    """A container standing for CHP in a container: what docker_attach joins to servers."""
    return docker_client.containers.run(
        docker_images,
        ["sleep", "900"],
        name=f"{PREFIX}-probe",
        labels={LABEL_HUB: PREFIX},
        detach=True,
    )


@pytest.fixture(scope="module")
def attach_hub(probe: Container, hub_factory: Callable[..., Hub]) -> Hub:
    # Servers of this hub never call it back here (no login through it): any name will do.
    return hub_factory(**SETTINGS, docker_attach=[probe.name], hub_connect_ip="hub.invalid")


def test_with_docker_attach_each_server_is_alone_on_a_network_of_its_own_with_them(
    attach_hub: Hub,
    probe: Container,
    docker_client: docker.DockerClient,  # noqa: F811
) -> None:
    spawn(attach_hub, "ann")
    spawn(attach_hub, "ben")
    addresses = {}
    for name in ("ann", "ben"):
        container = container_of(docker_client, name)
        # On its own internal network, and on the shared one (its way out).
        networks = container.attrs["NetworkSettings"]["Networks"]
        assert sorted(networks) == [PREFIX, f"{PREFIX}-{name}-net"]
        endpoint = networks[f"{PREFIX}-{name}-net"]
        network = docker_client.networks.get(f"{PREFIX}-{name}-net")
        assert network.attrs["Labels"][LABEL_USER] == name and network.attrs["Internal"]
        subnet = IPv4Network(network.attrs["IPAM"]["Config"][0]["Subnet"])
        assert subnet.prefixlen == 28 and subnet.subnet_of(IPv4Network("10.213.0.0/16"))
        members = {m["Name"] for m in network.attrs["Containers"].values()}
        assert members == {container.name, probe.name}
        addresses[name] = endpoint["IPAddress"]
        # The attached container reaches the server, at its address and by name.
        assert reaches_server(probe, addresses[name], 8888, f"/user/{name}/")
        assert reaches_server(probe, container.name, 8888, f"/user/{name}/")
    assert addresses["ann"] != addresses["ben"]
    ann, ben = container_of(docker_client, "ann"), container_of(docker_client, "ben")
    for endpoint in ben.attrs["NetworkSettings"]["Networks"].values():
        assert not reaches_server(ann, endpoint["IPAddress"], 8888, "/user/ben/")
    # CHP (on the host here) routes to each server: its own answer (no login, a 403).
    for name in ("ann", "ben"):
        page = attach_hub.get(f"/user/{name}/")
        assert page.status_code == 403 and page.headers.get("X-JupyterHub-Version"), page.text
    # A stop takes the server's network away, off the attached container too.
    stop(attach_hub, "ann")
    assert docker_client.networks.list(names=[f"{PREFIX}-ann-net"]) == []
    probe.reload()
    assert list(probe.attrs["NetworkSettings"]["Networks"]) == ["bridge", f"{PREFIX}-ben-net"]
    stop(attach_hub, "ben")


def test_with_docker_attach_a_network_of_the_name_that_is_not_the_servers_fails_the_spawn(
    attach_hub: Hub,
    foreign_network: Callable[..., str],
) -> None:
    foreign_network(f"{PREFIX}-cid-net", labels={"test": PREFIX})
    attach_hub.api("POST", "/users/cid")
    response = attach_hub.api("POST", "/users/cid/server")
    assert response.status_code == 409, response.text
    assert f"a Docker network named {PREFIX}-cid-net already exists" in response.json()["message"]
