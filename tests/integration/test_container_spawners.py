"""What the docker and swarm spawners do alike, against a real engine: each test runs
with the docker spawner (a container per server) and with the swarm spawner (a service
per server, on a one-node swarm), through real CHP and `flaskhub run`.

What only one of them does is in test_docker_spawner.py and test_swarm_spawner.py.
Each kind's hub has a docker_prefix of its own; what it made is told apart by label
and removed at the end. Hubs keep servers running when they stop (cleanup_servers =
false), as a restart must.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest
from docker.models.containers import Container
from docker.models.services import Service

from app.spawners.docker import LABEL_HUB, LABEL_SERVER, LABEL_USER, safe_name
from app.spawners.swarm import GWBRIDGE, SERVICE_SAFE
from tests.helpers import wait_for
from tests.integration.conftest import Hub, hub_env, start_hub
from tests.integration.docker_engine import (  # noqa: F401 (fixtures)
    BUILTIN_IMAGE,
    docker_client,
    docker_images,
    docker_swarm,
    reaches_server,
    remove_labelled,
    run_in,
    spawn,
    stop,
)

pytestmark = [pytest.mark.integration, pytest.mark.docker]

PREFIX = f"fhcs-{secrets.token_hex(3)}"
HOME = "/home/jovyan"
COMMON: dict[str, Any] = {
    "docker_image": BUILTIN_IMAGE,
    "cleanup_servers": False,
    "mem_limit": "256m",
    "cpu_limit": 0.5,
    "docker_env": {"GREETING": "hello"},
}
OWN: dict[str, dict[str, Any]] = {
    "docker": {},
    # On the host, the hub reaches tasks over docker_gwbridge (swarm_address's default).
    "swarm": {"swarm_placement": ["node.role==manager"], "swarm_volume_driver": "local"},
}
# The progress steps each spawner reports before the server is ready.
STEPS = {
    "docker": ("Looking up image", "Creating container", "Starting container", "Container"),
    "swarm": ("Looking up image", "Creating service", "Task of", "Service"),
}


def settings_of(kind: str, prefix: str) -> dict[str, Any]:
    return {**COMMON, **OWN[kind], "spawner": kind, "docker_prefix": prefix}


@dataclass(frozen=True)
class Engine:
    """One kind of spawner's hub, and how to find what it made on the engine."""

    kind: str  # "docker" or "swarm"
    prefix: str
    client: docker.DockerClient
    hub: Hub
    data_root: Path

    @property
    def word(self) -> str:
        """What a server is on the engine, as the hub's messages call it."""
        return "container" if self.kind == "docker" else "service"

    def name(self, user: str) -> str:
        """The name of user's container or service (a service's escapes "-", "." too)."""
        if self.kind == "docker":
            return f"{self.prefix}-{user}"
        return f"{self.prefix}-{safe_name(user, SERVICE_SAFE)}"

    def made(self, user: str) -> Container | Service:
        """The container or service the hub made for user's server."""
        name = self.name(user)
        return (self.client.containers if self.kind == "docker" else self.client.services).get(name)

    def labels(self, user: str) -> dict[str, str]:
        made = self.made(user)
        if isinstance(made, Service):
            return dict(made.attrs["Spec"]["Labels"])
        return dict(made.labels)

    def container(self, user: str) -> Container:
        """The running container of user's server (a service's: its task's)."""
        if self.kind == "docker":
            return self.client.containers.get(self.name(user))
        service = f"com.docker.swarm.service.name={self.name(user)}"
        (container,) = self.client.containers.list(filters={"label": service, "status": "running"})
        return container

    def gone(self, object_id: str) -> bool:
        try:
            (self.client.containers if self.kind == "docker" else self.client.services).get(
                object_id
            )
        except docker.errors.NotFound:
            return True
        return False

    def gateway(self) -> str:
        """Where servers reach the host: their bridge's gateway, or docker_gwbridge's."""
        network = self.prefix if self.kind == "docker" else GWBRIDGE
        return str(self.client.networks.get(network).attrs["IPAM"]["Config"][0]["Gateway"])

    def addresses(self, container: Container) -> list[str]:
        """A server container's addresses on each of its networks (a task's on
        docker_gwbridge too)."""
        container.reload()
        found = [n["IPAddress"] for n in container.attrs["NetworkSettings"]["Networks"].values()]
        if self.kind == "swarm":
            bridge = self.client.networks.get(GWBRIDGE).attrs["Containers"][container.id]
            found.append(bridge["IPv4Address"].split("/")[0])
        return [ip for ip in found if ip]

    def get_as(self, owner: str, user: str) -> Any:
        """GET /user/<owner>/ through CHP with user's token."""
        headers = {"Authorization": f"token {self.hub.token(user)}"}
        return self.hub.get(f"/user/{owner}/", headers=headers)

    @contextmanager
    def other_hub(self, **changes: Any) -> Iterator[Hub]:
        """A second hub of this kind, with changed settings, stopped at the end."""
        data_dir = self.data_root / secrets.token_hex(3)
        hub = start_hub(
            data_dir, hub_env(data_dir, **{**settings_of(self.kind, self.prefix), **changes})
        )
        try:
            yield hub
        finally:
            hub.stop()


@pytest.fixture(scope="module", params=["docker", "swarm"])
def engine(
    request: pytest.FixtureRequest,
    docker_client: docker.DockerClient,  # noqa: F811
    docker_images: str,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Engine]:
    kind = request.param
    if kind == "swarm":
        request.getfixturevalue("docker_swarm")
    prefix = f"{PREFIX}-{kind[0]}"
    root = tmp_path_factory.mktemp(kind)
    try:
        hub = start_hub(root / "hub", hub_env(root / "hub", **settings_of(kind, prefix)))
        try:
            yield Engine(kind, prefix, docker_client, hub, root)
        finally:
            hub.stop()
    finally:
        remove_labelled(docker_client, prefix)


def test_a_spawn_makes_a_labelled_server_and_reports_its_progress(engine: Engine) -> None:
    spawn(engine.hub, "alice")
    labels = engine.labels("alice")
    assert (labels[LABEL_USER], labels[LABEL_SERVER], labels[LABEL_HUB]) == (
        "alice",
        "",
        engine.prefix,
    )
    assert engine.container("alice").status == "running"
    # As stored for the progress page (which shows only "ready" once the spawn is over).
    (stored,) = engine.hub.query(
        "SELECT json_group_array(json(event)) FROM (SELECT event FROM progress_events "
        "JOIN servers ON servers.id = progress_events.server_id "
        "JOIN users ON users.id = servers.user_id WHERE users.name = 'alice' ORDER BY seq)"
    )[0]
    messages = [event["message"] for event in json.loads(stored)]
    for step in STEPS[engine.kind]:
        assert any(m.startswith(step) for m in messages), messages


def test_the_owner_reaches_the_server_through_the_proxy_others_do_not(engine: Engine) -> None:
    spawn(engine.hub, "alice")
    engine.hub.api("POST", "/users/mallory")
    assert engine.get_as("alice", "alice").status_code == 200
    assert engine.get_as("alice", "mallory").status_code == 403


def test_the_server_gets_its_environment_and_none_of_the_hubs(engine: Engine) -> None:
    spawn(engine.hub, "alice")
    env = dict(item.split("=", 1) for item in engine.container("alice").attrs["Config"]["Env"])
    assert env["GREETING"] == "hello" and env["JUPYTERHUB_USER"] == "alice"
    # Nothing of the hub's own environment (the tests give it PYTHONPATH and FLASKHUB_*).
    assert "PYTHONPATH" not in env and not any(k.startswith("FLASKHUB_") for k in env)
    assert env["JUPYTERHUB_API_URL"].startswith(f"http://{engine.gateway()}:")


def test_the_home_survives_stop_and_start_and_stop_removes_the_server(engine: Engine) -> None:
    spawn(engine.hub, "carol")
    first = engine.made("carol").id
    container = engine.container("carol")
    (volume,) = [m["Name"] for m in container.attrs["Mounts"] if m["Destination"] == HOME]
    # Keyed by the user's stable id, not their name (a rename keeps it, a new user of
    # the name does not get it).
    storage_id = engine.hub.query("SELECT storage_id FROM users WHERE name = 'carol'")[0][0]
    assert volume == f"{engine.prefix}-home-{storage_id}"
    run_in(container, f"echo kept > {HOME}/notes.txt")
    stop(engine.hub, "carol")
    assert engine.gone(first)
    if engine.kind == "swarm":  # and its network, which only it used
        assert f"{engine.prefix}-carol" not in [n.name for n in engine.client.networks.list()]
    assert engine.client.volumes.get(volume).attrs["Labels"][LABEL_USER] == "carol"
    spawn(engine.hub, "carol")
    assert engine.made("carol").id != first
    assert run_in(engine.container("carol"), f"cat {HOME}/notes.txt") == "kept\n"
    # The server itself lists it, through CHP.
    page = engine.get_as("carol", "carol")
    assert page.status_code == 200 and "notes.txt" in page.text


def test_users_have_their_own_homes_and_deleting_a_user_keeps_theirs(engine: Engine) -> None:
    spawn(engine.hub, "gina")
    spawn(engine.hub, "hal")
    gina, hal = engine.container("gina"), engine.container("hal")
    (volume,) = [m["Name"] for m in gina.attrs["Mounts"] if m["Destination"] == HOME]
    assert volume not in [m.get("Name") for m in hal.attrs["Mounts"]]
    stop(engine.hub, "gina")
    assert engine.hub.api("DELETE", "/users/gina").status_code == 204
    # keep_user_files is true by default.
    assert engine.client.volumes.get(volume).name == volume


def test_a_hub_restart_keeps_the_server_routed(engine: Engine) -> None:
    spawn(engine.hub, "alice")
    before = engine.made("alice").id
    engine.hub.restart()
    assert engine.made("alice").id == before
    wait_for(lambda: "/user/alice" in engine.hub.routes(), 30)
    assert engine.get_as("alice", "alice").status_code == 200
    assert engine.hub.api("GET", "/users/alice").json()["servers"][""]["ready"]


def test_a_missing_image_fails_naming_it_and_is_not_retried(engine: Engine) -> None:
    image = "flaskhub/no-such-image:0"
    with engine.other_hub(docker_image=image) as hub:
        hub.api("POST", "/users/dora")
        response = hub.api("POST", "/users/dora/server")
        assert response.status_code == 500
        message = response.json()["message"]
        if engine.kind == "docker":
            assert f"Image {image} is not on the Docker engine" in message
        else:
            # The node that rejected it is named; with no other node to try, it fails.
            host = engine.client.info()["Name"]
            assert f"No such image: {image}" in message
            assert f"could not start its server on node {host}" in message
            assert f"No other node can run it (tried node {host})" in message
        started = hub.query("SELECT started FROM servers")
        token = hub.token("dora")
        for _ in range(2):
            page = hub.get("/hub/user/dora/", headers={"Authorization": f"token {token}"})
            assert page.status_code == 500 and image in page.text
        # Not spawned again: a spawn would have claimed the row anew.
        assert hub.query("SELECT started FROM servers") == started
        # Nothing left to be retried, by the hub or the swarm.
        assert engine.gone(engine.name("dora"))
        if engine.kind == "swarm":  # nor the network made for it
            assert f"{engine.prefix}-dora" not in [n.name for n in engine.client.networks.list()]


def test_a_server_that_exits_at_once_fails_with_its_status_and_log(engine: Engine) -> None:
    with engine.other_hub(docker_cmd=["sh", "-c", "echo cannot go on; exit 3"]) as hub:
        hub.api("POST", "/users/erin")
        response = hub.api("POST", "/users/erin/server")
        assert response.status_code == 500
        message = response.json()["message"]
        assert "exited with status 3" in message and "cannot go on" in message


def test_servers_drop_net_raw_and_have_a_process_limit(engine: Engine) -> None:
    spawn(engine.hub, "alice")
    alice = engine.container("alice")
    NET_RAW = 13  # noqa: N806 (the capability's bit, linux/capability.h)
    bounding = int(run_in(alice, "sed -n 's/^CapBnd:\\t//p' /proc/self/status"), 16)
    assert not bounding & (1 << NET_RAW)
    assert run_in(alice, "cat /sys/fs/cgroup/pids/pids.max").strip() == "1024"


def test_servers_reach_the_hub_but_not_each_other_nor_the_proxy_api(engine: Engine) -> None:
    spawn(engine.hub, "alice")
    spawn(engine.hub, "bob")
    alice, bob = engine.container("alice"), engine.container("bob")
    assert reaches_server(alice, "127.0.0.1", 8888, "/user/alice/")
    for ip in engine.addresses(bob):
        assert not reaches_server(alice, ip, 8888, "/user/bob/"), ip
    # The hub's API, at JUPYTERHUB_API_URL, answers.
    fetch = (
        "import os,urllib.request as u; print(u.urlopen(os.environ['JUPYTERHUB_API_URL']).status)"
    )
    assert run_in(alice, f'python3 -c "{fetch}"').strip() == "200"
    # But not CHP's API (on the host's loopback only), though on the same host.
    api_port = engine.hub.proxy_api_url.rsplit(":", 1)[1]
    connect = "import socket,sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 3)"
    code, output = alice.exec_run(["python3", "-c", connect, engine.gateway(), api_port])
    assert code != 0, output
    # And CHP, on the host, reaches both servers.
    assert engine.get_as("alice", "alice").status_code == 200
    assert engine.get_as("bob", "bob").status_code == 200


@pytest.fixture
def foreign(
    engine: Engine,
    docker_images: str,  # noqa: F811
) -> Iterator[Callable[..., Container | Service]]:
    """Make containers or services named as the hub would name a user's, without its
    labels (an operator's own, e.g. compose's `<project>-db-1`); removed at the end."""
    made: list[Container | Service] = []

    def make(name: str, labels: dict[str, str] | None = None) -> Container | Service:
        labels = labels or {"test": PREFIX}
        command = ["sleep", "600"]
        if engine.kind == "docker":
            made.append(
                engine.client.containers.run(
                    docker_images, command, name=name, detach=True, labels=labels
                )
            )
        else:
            made.append(
                engine.client.services.create(docker_images, command, name=name, labels=labels)
            )
        return made[-1]

    yield make
    for thing in made:
        thing.remove(**({"force": True} if isinstance(thing, Container) else {}))


# Compose v2 names the deployment's own services <project>-<service>-1; a second hub on
# the engine whose docker_prefix is <prefix>-db names its user 1's container <prefix>-db-1.
# (Service names escape "-": there the objects only share the name the hub would use.)
def _second_hub(engine: Engine) -> dict[str, str]:
    return {LABEL_HUB: f"{engine.prefix}-db", LABEL_USER: "1", LABEL_SERVER: ""}


@pytest.mark.parametrize(
    ("user", "second_hubs"), [("db-1", False), ("proxy-1", False), ("hub-1", False), ("db-1", True)]
)
def test_a_server_of_the_name_that_is_not_the_hubs_fails_the_spawn_and_is_kept(
    engine: Engine,
    foreign: Callable[..., Container | Service],
    user: str,
    second_hubs: bool,
) -> None:
    name = engine.name(user)
    theirs = foreign(name, _second_hub(engine) if second_hubs else None)
    engine.hub.api("POST", f"/users/{user}")
    response = engine.hub.api("POST", f"/users/{user}/server")
    assert response.status_code == 409, response.text
    message = response.json()["message"]
    assert f"a Docker {engine.word} named {name} already exists" in message
    assert f"rename or remove that {engine.word}, or set docker_prefix" in message
    assert engine.made(user).id == theirs.id
    if engine.kind == "docker":
        assert engine.container(user).status == "running"
