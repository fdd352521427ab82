"""Users' servers on several nodes reach each other only as everyone can: docker/stack.yml
on test_cluster's three docker-in-docker nodes (its `cluster` fixture: a cluster of this
module's own).

Three servers on the two workers: two share a node, two are on different nodes. From
each server's container, another's extra listener (a port its owner opened, that no
proxy routes to) answers at none of that container's addresses, nor the hub's port;
CHP on every node still reaches every server, and each server reaches the hub.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Iterator

import docker
import pytest
from docker.models.containers import Container

from tests.cluster.cluster import Cluster, remove
from tests.integration.docker_engine import MAKES_IMAGES, docker_client  # noqa: F401 (fixture)
from tests.integration.test_cluster import NAME, cluster  # noqa: F401 (fixture)
from tests.integration.test_compose_stack import compose_images  # noqa: F401 (fixture)

pytestmark = [pytest.mark.integration, pytest.mark.docker, MAKES_IMAGES]

USERS = ("ida", "jon", "kim")
EXTRA_PORT = 9999
# Prints what each URL answered, or why it did not; never fails.
_FETCH = """
import sys, urllib.request
for url in sys.argv[1:]:
    try:
        print(url, urllib.request.urlopen(url, timeout=3).read().decode(errors="replace"))
    except Exception as e:
        print(url, "unreachable:", type(e).__name__)
"""

# Prints the status of the hub's API at the server's own JUPYTERHUB_API_URL.
_API = "import os, urllib.request as u; print(u.urlopen(os.environ['JUPYTERHUB_API_URL']).code)"


@pytest.fixture(scope="module")
def nodes_removed() -> Iterator[None]:
    """After the cluster's own teardown (requested before it): what it could not remove in
    its client's 30 s (a loaded host, nodes with servers running), with a patient client."""
    yield
    client = docker.from_env(timeout=300)
    try:
        remove(client, NAME)
    finally:
        client.close()


def task_container(nodes: Cluster, user: str) -> tuple[Container, str]:
    """The running container of user's server, on its node's engine, and that node."""
    hostname = nodes.node_of(user)
    engine = nodes.node(hostname).engine()
    selector = {"label": f"com.docker.swarm.service.name=flaskhub-{user}", "status": "running"}
    (container,) = engine.containers.list(filters=selector)
    return container, hostname


def addresses(nodes: Cluster, container: Container, hostname: str) -> list[str]:
    """Every address a container has: its networks' (overlays, docker_gwbridge), its node's."""
    container.reload()
    found = [n["IPAddress"] for n in container.attrs["NetworkSettings"]["Networks"].values()]
    engine = nodes.node(hostname).engine()
    gwbridge = engine.networks.get("docker_gwbridge").attrs.get("Containers") or {}
    if container.id in gwbridge:
        found.append(gwbridge[container.id]["IPv4Address"].split("/")[0])
    found.append(nodes.node(hostname).ip)
    return [ip for ip in found if ip]


def fetch(container: Container, *urls: str) -> str:
    code, output = container.exec_run(["python3", "-c", _FETCH, *urls])
    assert code == 0, output
    return str(output.decode())


def open_extra_port(container: Container, secret: str) -> None:
    """A listener of the owner's own on EXTRA_PORT that answers secret."""
    folder = f"/tmp/extra-{secret[:8]}"
    code, output = container.exec_run(
        ["sh", "-c", f"mkdir -p {folder} && echo {secret} > {folder}/secret.txt"]
    )
    assert code == 0, output
    serve = ["python3", "-m", "http.server", str(EXTRA_PORT), "--directory", folder]
    container.exec_run(serve, detach=True)


def test_servers_reach_no_other_servers_extra_port_on_any_node(
    nodes_removed: None,
    cluster: Cluster,  # noqa: F811
) -> None:
    for user in USERS:
        cluster.start(user)
    where = {user: task_container(cluster, user) for user in USERS}
    nodes = {user: hostname for user, (_, hostname) in where.items()}
    assert len(set(nodes.values())) == 2, nodes  # two workers, three servers
    secrets_of = {user: secrets.token_hex(16) for user in USERS}
    for user, (container, _) in where.items():
        open_extra_port(container, secrets_of[user])
        # The listener answers inside its own container (the probe works).
        local = f"http://127.0.0.1:{EXTRA_PORT}/secret.txt"
        assert secrets_of[user] in fetch(container, local), user
    for a, b in itertools.permutations(USERS, 2):
        container_b, node_b = where[b]
        urls = [
            f"http://{ip}:{EXTRA_PORT}/secret.txt"
            for ip in [*addresses(cluster, container_b, node_b), f"flaskhub-{b}"]
        ]
        seen = fetch(where[a][0], *urls)
        same = "same node" if nodes[a] == nodes[b] else "another node"
        assert secrets_of[b] not in seen, f"{a} reached {b}'s extra port ({same}):\n{seen}"
    for container, _ in where.values():
        # The hub's own port is not for servers; their API URL is.
        seen = fetch(container, "http://hub:8081/hub/health")
        assert "unreachable" in seen, seen
        api = (
            "import os,urllib.request as u; print(u.urlopen(os.environ['JUPYTERHUB_API_URL']).code)"
        )
        code, output = container.exec_run(["python3", "-c", api])
        assert (code, output.decode().strip()) == (0, "200"), output
    # CHP on every node reaches every server: the owner gets in, nobody else does.
    for node, (a, b) in itertools.product(range(3), itertools.permutations(USERS, 2)):
        assert cluster.status(a, node) == 200, (a, node)
        assert cluster.status(a, node, cluster.token(b)) == 403, (a, b, node)
