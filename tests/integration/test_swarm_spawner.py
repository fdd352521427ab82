"""What only the swarm spawner does, on a real single-node swarm: real services, real
CHP, `flaskhub run` (what it does as the docker spawner does: test_container_spawners.py).

The hub runs on the host (swarm_address = "docker_gwbridge"): CHP reaches each
task at its docker_gwbridge address and the task reaches the hub at that
bridge's gateway. The module's docker_prefix labels every service, volume and
network it makes; all are removed at the end.
"""

from __future__ import annotations

import contextlib
import html
import json
import secrets
import sqlite3
from collections.abc import Callable, Iterator
from typing import Any

import docker
import pytest
from docker.models.containers import Container
from docker.models.services import Service

from app.spawners.docker import LABEL_HUB
from app.spawners.swarm import GWBRIDGE
from tests.helpers import wait_for
from tests.integration.conftest import Hub
from tests.integration.docker_engine import (  # noqa: F401 (fixtures)
    BUILTIN_IMAGE,
    docker_client,
    docker_images,
    docker_swarm,
    probe_ports,
    reaches_server,
    remove_labelled,
    run_in,
    spawn,
    stop,
)

pytestmark = [pytest.mark.integration, pytest.mark.docker]

PREFIX = f"fhswarm-{secrets.token_hex(3)}"
# The published_hub's (its services must not meet the other hubs' of the same names).
PUBLISHED_PREFIX = f"{PREFIX}-p"
SETTINGS: dict[str, Any] = {
    "spawner": "swarm",
    "docker_prefix": PREFIX,
    "docker_image": BUILTIN_IMAGE,
    "cleanup_servers": False,
    "mem_limit": "256m",
    "cpu_limit": 0.5,
    "mem_guarantee": "64m",
    "cpu_guarantee": 0.25,
    "swarm_placement": ["node.role==manager"],
    "swarm_volume_driver": "local",
    "docker_env": {"GREETING": "hello"},
}
HOME = "/home/jovyan"


@pytest.fixture(scope="module")
def leftovers(
    docker_swarm: bool,  # noqa: F811
    docker_client: docker.DockerClient,  # noqa: F811
) -> Iterator[None]:
    """Remove what this module's hubs made (requested before the hubs: runs after them)."""
    yield
    remove_labelled(docker_client, PREFIX)


@pytest.fixture(scope="module")
def swarm_hub(
    leftovers: None,
    docker_images: str,  # noqa: F811
    hub_factory: Callable[..., Hub],
) -> Hub:
    return hub_factory(**SETTINGS)


def service_of(client: docker.DockerClient, name: str, prefix: str = PREFIX) -> Service:
    return client.services.get(f"{prefix}-{name}")


def container_of(client: docker.DockerClient, name: str, prefix: str = PREFIX) -> Container:
    """The running container of a user's task."""
    selector = {"label": f"com.docker.swarm.service.name={prefix}-{name}", "status": "running"}
    (container,) = client.containers.list(filters=selector)
    return container


def spec_of(client: docker.DockerClient, name: str, prefix: str = PREFIX) -> dict[str, Any]:
    return dict(service_of(client, name, prefix).attrs["Spec"]["TaskTemplate"])


def get_as(hub: Hub, owner: str, name: str) -> Any:
    """GET /user/<owner>/ through CHP with name's token."""
    return hub.get(f"/user/{owner}/", headers={"Authorization": f"token {hub.token(name)}"})


def test_limits_reservations_placement_restart_and_home(
    swarm_hub: Hub,
    docker_client: docker.DockerClient,  # noqa: F811
) -> None:
    spawn(swarm_hub, "alice")
    service = service_of(docker_client, "alice")
    assert service.attrs["Spec"]["Mode"] == {"Replicated": {"Replicas": 1}}
    spec = spec_of(docker_client, "alice")
    # A server that ends is not started again by the swarm: the hub says why it ended.
    assert spec["RestartPolicy"]["Condition"] == "none"
    assert spec["Resources"] == {
        "Limits": {"MemoryBytes": 256 * 1024 * 1024, "NanoCPUs": 500_000_000, "Pids": 1024},
        "Reservations": {"MemoryBytes": 64 * 1024 * 1024, "NanoCPUs": 250_000_000},
    }
    assert spec["Placement"]["Constraints"] == ["node.role==manager"]
    (home,) = spec["ContainerSpec"]["Mounts"]
    assert home["Target"] == HOME
    assert home["VolumeOptions"]["DriverConfig"]["Name"] == "local"
    # An overlay network of its own (the hub reaches it over docker_gwbridge).
    (attached,) = spec["Networks"]
    network = docker_client.networks.get(attached["Target"])
    assert network.name == f"{PREFIX}-alice" and network.attrs["Driver"] == "overlay"
    assert network.attrs["Labels"][LABEL_HUB] == PREFIX


def test_a_network_of_the_name_that_is_not_the_hubs_fails_the_spawn_and_is_kept(
    swarm_hub: Hub,
    docker_client: docker.DockerClient,  # noqa: F811
) -> None:
    name = f"{PREFIX}-nina"
    theirs = docker_client.networks.create(name, driver="overlay", labels={"test": PREFIX})
    try:
        swarm_hub.api("POST", "/users/nina")
        response = swarm_hub.api("POST", "/users/nina/server")
        assert response.status_code == 409, response.text
        assert f"a Docker network named {name} already exists" in response.json()["message"]
        assert docker_client.networks.get(name).id == theirs.id
    finally:
        theirs.remove()


def test_a_network_named_in_docker_network_is_shared(
    leftovers: None,
    docker_client: docker.DockerClient,  # noqa: F811
    docker_images: str,  # noqa: F811
    hub_factory: Callable[..., Hub],
) -> None:
    # E.g. for tasks to reach a service of the operator's on it, knowingly.
    hub = hub_factory(**{**SETTINGS, "docker_network": f"{PREFIX}-shared"})
    spawn(hub, "sue")
    (attached,) = spec_of(docker_client, "sue")["Networks"]
    network = docker_client.networks.get(attached["Target"])
    assert network.name == f"{PREFIX}-shared" and network.attrs["Attachable"]
    stop(hub, "sue")
    assert docker_client.networks.get(f"{PREFIX}-shared").id == network.id


@pytest.fixture(scope="module")
def published_leftovers(
    docker_swarm: bool,  # noqa: F811
    docker_client: docker.DockerClient,  # noqa: F811
) -> Iterator[None]:
    """Remove what published_hub made (requested before it: runs after it)."""
    yield
    remove_labelled(docker_client, PUBLISHED_PREFIX)


@pytest.fixture(scope="module")
def published_hub(
    published_leftovers: None,
    docker_images: str,  # noqa: F811
    hub_factory: Callable[..., Hub],
) -> Hub:
    """A hub in the stack's mode: servers published on their node, reaching the hub
    through the proxy, which listens where tasks reach the host (ip 0.0.0.0)."""
    settings = {**SETTINGS, "docker_prefix": PUBLISHED_PREFIX, "dummy_password": "sesame"}
    return hub_factory(**settings, swarm_address="published", ip="0.0.0.0")


# Prints what each URL answered, or why it did not.
_FETCH = """
import sys, urllib.request
for url in sys.argv[1:]:
    try:
        print(url, urllib.request.urlopen(url, timeout=3).read().decode(errors="replace"))
    except Exception as e:
        print(url, "unreachable:", type(e).__name__)
"""


def fetch(container: Container, *urls: str) -> str:
    """What each URL answered from inside container (or why not), one line each."""
    code, output = container.exec_run(["python3", "-c", _FETCH, *urls])
    assert code == 0, output
    return str(output.decode())


def open_extra_port(container: Container, port: int) -> str:
    """Start a listener of the user's own on port in container; the secret it answers."""
    secret = secrets.token_hex(16)
    run_in(container, f"mkdir -p /tmp/{secret} && echo {secret} > /tmp/{secret}/secret.txt")
    container.exec_run(
        ["python3", "-m", "http.server", str(port), "--directory", f"/tmp/{secret}"], detach=True
    )
    wait_for(lambda: secret in fetch(container, f"http://127.0.0.1:{port}/secret.txt"), 10)
    return secret


def every_address(client: docker.DockerClient, container: Container) -> list[str]:
    """A container's addresses on its networks and docker_gwbridge, the bridges' gateways
    (the host), and its service's name."""
    container.reload()
    found = [n["IPAddress"] for n in container.attrs["NetworkSettings"]["Networks"].values()]
    gwbridge = client.networks.get(GWBRIDGE).attrs
    found.append(gwbridge["Containers"][container.id]["IPv4Address"].split("/")[0])
    found.append(gwbridge["IPAM"]["Config"][0]["Gateway"])
    found.append(client.networks.get("bridge").attrs["IPAM"]["Config"][0]["Gateway"])
    found.append(container.labels["com.docker.swarm.service.name"])
    return [ip for ip in found if ip]


@pytest.mark.parametrize("mode", ["docker_gwbridge", "published"])
def test_a_server_reaches_no_port_another_opens_and_the_proxy_reaches_both(
    request: pytest.FixtureRequest,
    docker_client: docker.DockerClient,  # noqa: F811
    mode: str,
) -> None:
    hub: Hub = request.getfixturevalue("published_hub" if mode == "published" else "swarm_hub")
    prefix = PUBLISHED_PREFIX if mode == "published" else PREFIX
    spawn(hub, "alice")
    spawn(hub, "bob")
    alice = container_of(docker_client, "alice", prefix)
    bob = container_of(docker_client, "bob", prefix)
    secret = open_extra_port(bob, 9999)
    urls = [f"http://{ip}:9999/secret.txt" for ip in every_address(docker_client, bob)]
    seen = fetch(alice, *urls)
    assert secret not in seen, seen
    assert seen.count("unreachable") == len(urls), seen
    # Each server reaches the hub (its API URL), the proxy reaches each.
    for container, name in ((alice, "alice"), (bob, "bob")):
        api = container.attrs["Config"]["Env"]
        (url,) = [e.split("=", 1)[1] for e in api if e.startswith("JUPYTERHUB_API_URL=")]
        assert '"version"' in fetch(container, url.rstrip("/") + "/")
        assert get_as(hub, name, name).status_code == 200
    assert get_as(hub, "bob", "alice").status_code == 403


def test_published_servers_are_reached_at_their_node_and_reach_the_hub_only_by_the_proxy(
    published_hub: Hub,
    docker_client: docker.DockerClient,  # noqa: F811
) -> None:
    spawn(published_hub, "alice")
    spawn(published_hub, "bob")
    alice = container_of(docker_client, "alice", PUBLISHED_PREFIX)
    env = dict(e.split("=", 1) for e in alice.attrs["Config"]["Env"])
    proxy_port = published_hub.public_url.rsplit(":", 1)[1]
    assert env["JUPYTERHUB_API_URL"] == f"http://host.docker.internal:{proxy_port}/hub/api"
    # An overlay network of its own, and the server port published on its node.
    (attached,) = spec_of(docker_client, "alice", PUBLISHED_PREFIX)["Networks"]
    assert docker_client.networks.get(attached["Target"]).name == f"{PUBLISHED_PREFIX}-alice"
    # bob's server as the hub reaches it: its node's host (advertised on loopback, so a
    # swarm of this one node: docker_gwbridge's gateway), the port published there.
    (task,) = service_of(docker_client, "bob", PUBLISHED_PREFIX).tasks()
    (port,) = {p["PublishedPort"] for p in task["Status"]["PortStatus"]["Ports"]}
    gateway = docker_client.networks.get(GWBRIDGE).attrs["IPAM"]["Config"][0]["Gateway"]
    url = f"http://{gateway}:{port}"
    stored = published_hub.query("SELECT url FROM servers")
    assert (url,) in stored, stored
    # From alice's container bob's server answers there as it does anyone (its own
    # checks apply), but the hub's port and CHP's API answer at none of the host's
    # addresses: servers reach the hub through the proxy only.
    assert reaches_server(alice, gateway, port, "/user/bob/")
    hosts = [gateway, "host.docker.internal"]
    ports = [int(u.rsplit(":", 1)[1]) for u in (published_hub.hub_url, published_hub.proxy_api_url)]
    assert probe_ports(alice, *(f"{h}:{p}" for h in hosts for p in ports)) == [
        word for h in hosts for _ in ports for word in (h, "closed")
    ]
    assert get_as(published_hub, "bob", "bob").status_code == 200
    # Through the proxy, the address a server makes up is not believed: CHP's word is.
    code, output = alice.exec_run(
        ["python3", "-c", _LOGIN, env["JUPYTERHUB_API_URL"].removesuffix("/hub/api")]
    )
    assert (code, output.decode().split()) == (0, ["403"]), output
    keys = {key for (key,) in published_hub.query("SELECT key FROM login_failures")}
    assert "addr:203.0.113.9" not in keys
    own = docker_client.networks.get(GWBRIDGE).attrs["Containers"][alice.id]["IPv4Address"]
    assert f"addr:{own.split('/')[0]}" in keys, keys


# A wrong password through the login form at argv[1], claiming another address; prints
# the answer's status.
_LOGIN = """
import http.cookiejar, re, sys, urllib.error, urllib.parse, urllib.request as u
opener = u.build_opener(u.HTTPCookieProcessor(http.cookiejar.CookieJar()))
page = opener.open(sys.argv[1] + "/hub/login", timeout=10).read().decode()
xsrf = re.search('name="_xsrf" value="([^"]+)"', page).group(1)
form = {"username": "eve", "password": "guess", "_xsrf": xsrf}
request = u.Request(
    sys.argv[1] + "/hub/login",
    data=urllib.parse.urlencode(form).encode(),
    headers={"X-Forwarded-For": "203.0.113.9"},
)
try:
    print(opener.open(request, timeout=10).status)
except urllib.error.HTTPError as e:
    print(e.code)
"""


def test_the_docker_and_swarm_spawners_defaults_never_meet_on_one_network_name(
    leftovers: None,
    docker_client: docker.DockerClient,  # noqa: F811
    docker_images: str,  # noqa: F811
    hub_factory: Callable[..., Hub],
) -> None:
    # An engine that ran the docker spawner: its bridge, named docker_prefix, stays.
    prefix = f"{PREFIX}-sw"
    try:
        hub_factory(**{**SETTINGS, "spawner": "docker", "docker_prefix": prefix})
        bridge = docker_client.networks.get(prefix)
        assert bridge.attrs["Driver"] == "bridge"
        # Switched to swarm ("network" mode): its overlay network is made at start, apart.
        hub_factory(
            **{**SETTINGS, "docker_prefix": prefix},
            swarm_address="network",
            hub_connect_ip="127.0.0.1",
        )
        overlay = docker_client.networks.get(f"{prefix}-overlay")
        assert (overlay.attrs["Driver"], overlay.attrs["Scope"]) == ("overlay", "swarm")
        assert docker_client.networks.get(prefix).id == bridge.id
    finally:
        remove_labelled(docker_client, prefix)


@pytest.mark.parametrize(
    ("spawner", "driver", "why"),
    [
        ("swarm", "bridge", "it is a bridge network, and servers need an overlay network"),
        ("docker", "overlay", "it is an overlay network, and servers need a bridge network"),
    ],
)
def test_a_network_of_the_wrong_driver_is_refused_at_start_with_the_fix(
    leftovers: None,
    docker_client: docker.DockerClient,  # noqa: F811
    docker_images: str,  # noqa: F811
    hub_factory: Callable[..., Hub],
    spawner: str,
    driver: str,
    why: str,
) -> None:
    name = f"{PREFIX}-{driver}"
    options = {"attachable": True} if driver == "overlay" else {}
    docker_client.networks.create(name, driver=driver, labels={LABEL_HUB: PREFIX}, **options)
    with pytest.raises(RuntimeError) as refused:
        hub_factory(**{**SETTINGS, "spawner": spawner, "docker_network": name})
    assert f"Docker network {name} cannot hold user servers: {why}" in str(refused.value)
    assert "Set docker_network to name another" in str(refused.value)


def stored_state(hub: Hub, name: str) -> dict[str, Any]:
    (state,) = hub.query(
        "SELECT spawner_state FROM servers JOIN users ON users.id = servers.user_id "
        "WHERE users.name = ?",
        name,
    )[0]
    return dict(json.loads(state))


def test_a_users_next_server_starts_on_the_node_of_their_home_or_not_at_all(
    swarm_hub: Hub,
    docker_client: docker.DockerClient,  # noqa: F811
) -> None:
    (node,) = docker_client.nodes.list()
    spawn(swarm_hub, "hana")
    assert stored_state(swarm_hub, "hana")["kept"] == {"home_node": node.id}
    stop(swarm_hub, "hana")
    # Kept while stopped; the next task may run only there.
    assert stored_state(swarm_hub, "hana") == {"kept": {"home_node": node.id}}
    spawn(swarm_hub, "hana")
    constraints = spec_of(docker_client, "hana")["Placement"]["Constraints"]
    assert f"node.id=={node.id}" in constraints
    stop(swarm_hub, "hana")
    # The home's node has left the swarm (a fault injected into the record): no start,
    # never an empty home elsewhere, and the message names the way out.
    gone = json.dumps({"kept": {"home_node": "k2x9gonenode0000000000000"}})
    with contextlib.closing(sqlite3.connect(swarm_hub.data_dir / "flaskhub.sqlite")) as db:
        db.execute(
            "UPDATE servers SET spawner_state = ? WHERE user_id = "
            "(SELECT id FROM users WHERE name = 'hana')",
            (gone,),
        )
        db.commit()
    response = swarm_hub.api("POST", "/users/hana/server")
    assert response.status_code == 503, response.text
    message = response.json()["message"]
    assert "that machine (k2x9gonenode) has left the swarm" in message
    assert "flaskhub server forget-home hana" in message
    assert docker_client.services.list(filters={"name": f"{PREFIX}-hana"}) == []
    # The admin lets hana start afresh, explicitly.
    result = swarm_hub.cli("server", "forget-home", "hana")
    assert result.returncode == 0, result.stderr
    assert "no longer tied to node k2x9gonenode" in result.stderr
    spawn(swarm_hub, "hana")
    constraints = spec_of(docker_client, "hana")["Placement"].get("Constraints") or []
    assert not [c for c in constraints if c.startswith("node.id==")]
    stop(swarm_hub, "hana")
    # forget-home on an active server is refused.
    spawn(swarm_hub, "hana")
    refused = swarm_hub.cli("server", "forget-home", "hana")
    assert refused.returncode != 0 and "Stop hana's server first" in refused.stderr


def test_a_server_on_a_drained_node_is_stopped_and_its_owner_told_why(
    docker_swarm: bool,  # noqa: F811
    swarm_hub: Hub,
    docker_client: docker.DockerClient,  # noqa: F811
) -> None:
    """Last in the module: draining the (only) node stops every task on it. As a lost
    node is (down: seen with docker-in-docker nodes), without waiting for poll_interval."""
    if not docker_swarm:
        pytest.skip("the engine was a swarm before the tests: its node is not theirs to drain")
    spawn(swarm_hub, "dana")
    (node,) = docker_client.nodes.list()
    spec = node.attrs["Spec"]
    node.update({**spec, "Availability": "drain"})
    try:
        # Within a node check (5 s) and a tick, far below poll_interval (30 s).
        wait_for(lambda: not swarm_hub.api("GET", "/users/dana").json()["servers"], 20, 0.5)
        # Removed, so that the swarm starts it nowhere else, away from its home.
        assert docker_client.services.list(filters={"name": f"{PREFIX}-dana"}) == []
        token = swarm_hub.token("dana")
        page = swarm_hub.get("/hub/home", headers={"Authorization": f"token {token}"})
        host = node.attrs["Description"]["Hostname"]
        assert f"the machine it ran on ({host}) was drained" in html.unescape(page.text)
        assert "Start it again" in page.text
    finally:
        node.reload()
        node.update({**node.attrs["Spec"], "Availability": "active"})
