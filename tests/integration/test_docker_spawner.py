"""The docker spawner against a real engine: real containers, real CHP, `flaskhub run`.

The module's hub has its own docker_prefix, so its containers, volumes and
network are told apart by label and all removed at the end; it keeps servers
running when it stops (cleanup_servers = false), as a restart must.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator
from ipaddress import IPv4Network
from typing import Any

import docker
import pytest
from docker.models.containers import Container

from app.spawners.docker import LABEL_HUB, LABEL_SERVER, LABEL_USER
from tests.helpers import wait_for
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


def home_volume(client: docker.DockerClient, name: str) -> str:
    """The name of the volume mounted as a user's home."""
    mounts = container_of(client, name).attrs["Mounts"]
    return next(m["Name"] for m in mounts if m["Destination"] == HOME)


def test_spawn_runs_a_labelled_container_and_reports_progress(
    docker_hub: Hub,
    docker_client: docker.DockerClient,  # noqa: F811
) -> None:
    spawn(docker_hub, "alice")
    container = container_of(docker_client, "alice")
    assert container.status == "running"
    assert container.labels[LABEL_USER] == "alice"
    assert container.labels[LABEL_SERVER] == ""
    assert container.labels[LABEL_HUB] == PREFIX
    # As stored for the progress page (which shows only "ready" once the spawn is over).
    (stored,) = docker_hub.query(
        "SELECT json_group_array(json(event)) FROM (SELECT event FROM progress_events "
        "JOIN servers ON servers.id = progress_events.server_id "
        "JOIN users ON users.id = servers.user_id WHERE users.name = 'alice' ORDER BY seq)"
    )[0]
    messages = [event["message"] for event in json.loads(stored)]
    for step in ("Looking up image", "Creating container", "Starting container", "Container"):
        assert any(m.startswith(step) for m in messages), messages


def test_owner_reaches_the_server_through_the_proxy_others_do_not(docker_hub: Hub) -> None:
    spawn(docker_hub, "alice")
    docker_hub.api("POST", "/users/mallory")
    for name, status in (("alice", 200), ("mallory", 403)):
        token = docker_hub.token(name)
        response = docker_hub.get("/user/alice/", headers={"Authorization": f"token {token}"})
        assert response.status_code == status, response.text


def test_spawn_through_the_browser_path_lands_in_the_container(docker_hub: Hub) -> None:
    # Start My Server, then the server's OAuth round trip with the hub (over the gateway).
    session = login(docker_hub, "frank")
    session.headers["Accept"] = "text/html"
    page = session.get(f"{docker_hub.public_url}/hub/spawn", timeout=60)
    assert page.status_code == 200, page.text
    assert page.url == f"{docker_hub.public_url}/user/frank/" and "frank" in page.text


def test_limits_and_environment(
    docker_hub: Hub,
    docker_client: docker.DockerClient,  # noqa: F811
) -> None:
    spawn(docker_hub, "alice")
    attrs = container_of(docker_client, "alice").attrs
    assert attrs["HostConfig"]["Memory"] == 256 * 1024 * 1024
    assert attrs["HostConfig"]["NanoCpus"] == 500_000_000
    # server_nice 10: the CPU weight of nice 10 against the hub's 1024.
    assert attrs["HostConfig"]["CpuShares"] == 110
    env = dict(item.split("=", 1) for item in attrs["Config"]["Env"])
    assert env["GREETING"] == "hello" and env["JUPYTERHUB_USER"] == "alice"
    # Nothing of the hub's own environment (the tests give it PYTHONPATH and FLASKHUB_*).
    assert "PYTHONPATH" not in env and not any(k.startswith("FLASKHUB_") for k in env)
    network = docker_client.networks.get(PREFIX)
    gateway = network.attrs["IPAM"]["Config"][0]["Gateway"]
    assert env["JUPYTERHUB_API_URL"].startswith(f"http://{gateway}:")


def test_home_survives_stop_and_start_and_stop_removes_the_container(
    docker_hub: Hub,
    docker_client: docker.DockerClient,  # noqa: F811
) -> None:
    spawn(docker_hub, "carol")
    first = container_of(docker_client, "carol")
    run_in(first, f"echo kept > {HOME}/notes.txt")
    volume = home_volume(docker_client, "carol")
    stop(docker_hub, "carol")
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get(first.id)
    assert docker_client.volumes.get(volume).name == volume
    spawn(docker_hub, "carol")
    second = container_of(docker_client, "carol")
    assert second.id != first.id
    assert run_in(second, f"cat {HOME}/notes.txt") == "kept\n"
    # The server itself lists it, through CHP.
    token = docker_hub.token("carol")
    page = docker_hub.get("/user/carol/", headers={"Authorization": f"token {token}"})
    assert page.status_code == 200 and "notes.txt" in page.text


def test_deleting_a_user_keeps_their_volume(
    docker_hub: Hub,
    docker_client: docker.DockerClient,  # noqa: F811
) -> None:
    spawn(docker_hub, "gina")
    volume = home_volume(docker_client, "gina")
    stop(docker_hub, "gina")
    assert docker_hub.api("DELETE", "/users/gina").status_code == 204
    # keep_user_files is true by default.
    assert docker_client.volumes.get(volume).name == volume


def test_users_have_their_own_volumes(
    docker_hub: Hub,
    docker_client: docker.DockerClient,  # noqa: F811
) -> None:
    spawn(docker_hub, "alice")
    spawn(docker_hub, "bob")
    bob_volume = home_volume(docker_client, "bob")
    assert bob_volume != home_volume(docker_client, "alice")
    alice_mounts = container_of(docker_client, "alice").attrs["Mounts"]
    assert bob_volume not in [m.get("Name") for m in alice_mounts]
    storage_id = docker_hub.query("SELECT storage_id FROM users WHERE name = 'bob'")[0][0]
    assert bob_volume == f"{PREFIX}-home-{storage_id}"


def test_a_hub_restart_keeps_the_container_routed(
    docker_hub: Hub,
    docker_client: docker.DockerClient,  # noqa: F811
) -> None:
    spawn(docker_hub, "alice")
    before = container_of(docker_client, "alice").id
    docker_hub.restart()
    assert container_of(docker_client, "alice").id == before
    wait_for(lambda: "/user/alice" in docker_hub.routes(), 30)
    token = docker_hub.token("alice")
    response = docker_hub.get("/user/alice/", headers={"Authorization": f"token {token}"})
    assert response.status_code == 200
    assert docker_hub.api("GET", "/users/alice").json()["servers"][""]["ready"]


def test_a_missing_image_fails_naming_it_and_is_not_retried(
    leftovers: None,
    docker_client: docker.DockerClient,  # noqa: F811
    docker_images: str,  # noqa: F811
    hub_factory: Callable[..., Hub],
) -> None:
    image = "flaskhub/no-such-image:0"
    hub = hub_factory(**{**SETTINGS, "docker_image": image})
    hub.api("POST", "/users/dora")
    response = hub.api("POST", "/users/dora/server")
    assert response.status_code == 500
    assert f"Image {image} is not on the Docker engine" in response.json()["message"]
    started = hub.query("SELECT started FROM servers")
    token = hub.token("dora")
    for _ in range(2):
        page = hub.get("/hub/user/dora/", headers={"Authorization": f"token {token}"})
        assert page.status_code == 500 and image in page.text
    # Not spawned again: a spawn would have claimed the row anew.
    assert hub.query("SELECT started FROM servers") == started
    assert docker_client.containers.list(all=True, filters={"name": f"{PREFIX}-dora"}) == []


def test_a_container_that_exits_at_once_fails_with_its_status_and_log(
    leftovers: None,
    docker_images: str,  # noqa: F811
    hub_factory: Callable[..., Hub],
) -> None:
    hub = hub_factory(**{**SETTINGS, "docker_cmd": ["sh", "-c", "echo cannot go on; exit 3"]})
    hub.api("POST", "/users/erin")
    response = hub.api("POST", "/users/erin/server")
    assert response.status_code == 500
    message = response.json()["message"]
    assert "exited with status 3" in message and "cannot go on" in message


@pytest.fixture
def foreign_container(
    docker_client: docker.DockerClient,  # noqa: F811
    docker_images: str,  # noqa: F811
) -> Iterator[Callable[..., Container]]:
    """Make containers named as the hub would name a user's, without its labels (an
    operator's own, e.g. compose's `<project>-db-1`); removed at the end."""
    made: list[Container] = []

    def make(name: str, labels: dict[str, str] | None = None) -> Container:
        container = docker_client.containers.run(
            docker_images, ["sleep", "600"], name=name, detach=True, labels=labels or {}
        )
        made.append(container)
        return container

    yield make
    for container in made:
        container.remove(force=True)


# Compose v2 names the deployment's own services <project>-<service>-1; a second hub on
# the engine whose docker_prefix is <PREFIX>-db names its user 1's container <PREFIX>-db-1.
SECOND_HUB = {LABEL_HUB: f"{PREFIX}-db", LABEL_USER: "1", LABEL_SERVER: ""}


@pytest.mark.parametrize(
    ("user", "labels"),
    [("db-1", {}), ("proxy-1", {}), ("hub-1", {}), ("db-1", SECOND_HUB)],
)
def test_a_container_of_the_name_that_is_not_the_hubs_fails_the_spawn_and_is_kept(
    docker_hub: Hub,
    docker_client: docker.DockerClient,  # noqa: F811
    foreign_container: Callable[..., Container],
    user: str,
    labels: dict[str, str],
) -> None:
    name = f"{PREFIX}-{user}"
    theirs = foreign_container(name, labels)
    docker_hub.api("POST", f"/users/{user}")
    response = docker_hub.api("POST", f"/users/{user}/server")
    assert response.status_code == 409, response.text
    message = response.json()["message"]
    assert f"a Docker container named {name} already exists" in message
    assert "rename or remove that container, or set docker_prefix" in message
    kept = docker_client.containers.get(name)
    assert kept.id == theirs.id and kept.status == "running"


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


def test_containers_reach_the_hub_but_not_each_other(
    docker_hub: Hub,
    docker_client: docker.DockerClient,  # noqa: F811
) -> None:
    spawn(docker_hub, "alice")
    spawn(docker_hub, "bob")
    alice, bob = container_of(docker_client, "alice"), container_of(docker_client, "bob")
    bob_ip = bob.attrs["NetworkSettings"]["Networks"][PREFIX]["IPAddress"]
    assert reaches_server(alice, "127.0.0.1", 8888, "/user/alice/")
    assert not reaches_server(alice, bob_ip, 8888, "/user/bob/")
    # The hub's API, over the network's gateway (JUPYTERHUB_API_URL), answers.
    fetch = (
        "import os,urllib.request as u; print(u.urlopen(os.environ['JUPYTERHUB_API_URL']).status)"
    )
    assert run_in(alice, f'python3 -c "{fetch}"').strip() == "200"
    # But not CHP's API (on the host's loopback only), though on the same host.
    gateway = docker_client.networks.get(PREFIX).attrs["IPAM"]["Config"][0]["Gateway"]
    api_port = docker_hub.proxy_api_url.rsplit(":", 1)[1]
    connect = "import socket,sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 3)"
    code, output = alice.exec_run(["python3", "-c", connect, gateway, api_port])
    assert code != 0 and b"refused" in output, output
    # And CHP, on the host, reaches both servers.
    for name in ("alice", "bob"):
        token = docker_hub.token(name)
        page = docker_hub.get(f"/user/{name}/", headers={"Authorization": f"token {token}"})
        assert page.status_code == 200
    options = docker_client.networks.get(PREFIX).attrs["Options"]
    assert options["com.docker.network.bridge.enable_icc"] == "false"


def test_containers_drop_net_raw_and_have_a_process_limit(
    docker_hub: Hub,
    docker_client: docker.DockerClient,  # noqa: F811
) -> None:
    spawn(docker_hub, "alice")
    alice = container_of(docker_client, "alice")
    NET_RAW = 13  # noqa: N806 (the capability's bit, linux/capability.h)
    bounding = int(run_in(alice, "sed -n 's/^CapBnd:\\t//p' /proc/self/status"), 16)
    assert not bounding & (1 << NET_RAW)
    assert run_in(alice, "cat /sys/fs/cgroup/pids/pids.max").strip() == "1024"


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
