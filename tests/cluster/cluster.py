"""A real swarm of three docker-in-docker nodes on this host, running docker/stack.yml.

Shared by tests/integration/test_cluster.py and benchmarks/swarm_spawns.py. Each node is
a container of this folder's image running Debian's dockerd (DOCKER.md: no --privileged
here, cgroups remounted read-write, stale pid files removed), on a bridge network of
the cluster's own; the host drives each node's engine through a socket in a
bind-mounted folder. n1 is the one manager (the hubs, the database, the registry), n2
and n3 are workers, where users' servers run (FLASKHUB_SWARM_PLACEMENT). Every node runs
a CHP, so each node's port 8000 serves every user.

The images reach the nodes as the README's recipe says: the stack runs a registry on
the manager, `docker/push` (run against the manager's engine, which reaches it at
127.0.0.1:5000) pushes the hub, proxy and single-user images there, and every node pulls
them at the manager's address (FLASKHUB_REGISTRY), plain HTTP being allowed there by
each node's `--insecure-registry` for the cluster's subnet (the nodes' engines are the
cluster's own; the host's is never reconfigured). Only the manager gets images loaded
(`docker save | docker load`): the registry's own, the database's, and those it pushes,
since the host's engine cannot push to the manager's registry without an insecure
address of its own. `remove` takes away everything a cluster made (node containers,
their volumes, the network); the swarm lives inside the nodes, so the host's engine is
never a swarm because of it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import requests
from docker.models.containers import Container

from tests.helpers import wait_for

REPO = Path(__file__).resolve().parents[2]
NODE_IMAGE = "flaskhub/test-node:bookworm"
HUB_IMAGE = "flaskhub/hub:0.1.0"
PROXY_IMAGE = "flaskhub/proxy:0.1.0"
REGISTRY_IMAGE = "registry:2"
# On the manager only: the registry's own image and the database's (upstream images).
MANAGER_ONLY = (REGISTRY_IMAGE, "postgres:15")
REGISTRY_PORT = 5000
DOCKER = shutil.which("docker")
# Debian's docker.io 20.10 in the nodes: asked for no version, the SDK asks first.
API = "1.41"
PASSWORD = "correct horse battery"
# What a swarm spawn of JupyterLab may take on a loaded 2-core host running three engines.
READY_WITHIN = 240
LABEL = "org.flaskhub.test"


@dataclass
class Node:
    """One docker-in-docker node: its container on the host, its engine's socket."""

    container: Container
    socket: Path
    hostname: str
    ip: str = ""
    client: docker.DockerClient | None = None

    @property
    def url(self) -> str:
        """This node's public port: its own CHP."""
        return f"http://{self.ip}:8000"

    def docker(self, *args: str, timeout: float = 300, **kwargs: Any) -> str:
        """The docker CLI against this node's engine; its output (fails on error)."""
        assert DOCKER is not None
        result = subprocess.run(
            [DOCKER, "-H", f"unix://{self.socket}", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            **kwargs,
        )
        assert result.returncode == 0, f"docker {' '.join(args)}: {result.stderr}"
        return result.stdout

    def hub_log(self) -> str:
        """What the hub tasks logged (the hub logs to stderr, which `service logs` keeps)."""
        assert DOCKER is not None
        args = [DOCKER, "-H", f"unix://{self.socket}", "service", "logs", "flaskhub_hub"]
        result = subprocess.run(args, capture_output=True, text=True, timeout=60)
        return result.stdout + result.stderr

    def engine(self) -> docker.DockerClient:
        """A client of this node's engine (one, kept until the cluster goes)."""
        if self.client is None:
            self.client = docker.DockerClient(
                base_url=f"unix://{self.socket}", version=API, timeout=60
            )
        return self.client

    def answers(self) -> bool:
        """Whether the node's engine answers yet (a client of its own, closed each time)."""
        if not self.socket.exists():
            return False
        client = docker.DockerClient(base_url=f"unix://{self.socket}", version=API, timeout=5)
        try:
            return bool(client.ping())
        except (docker.errors.DockerException, requests.RequestException):
            return False
        finally:
            client.close()

    def repo_digests(self, image: str) -> list[str]:
        """The registry digests this node's engine has for image (a pull records one)."""
        try:
            return list(self.engine().images.get(image).attrs["RepoDigests"])
        except docker.errors.ImageNotFound:
            return []


@dataclass
class Cluster:
    """The nodes, the registry's address as the nodes reach it, and the hub's tokens."""

    nodes: list[Node]
    db_password: str
    registry: str
    single_user_image: str
    admin: str = ""
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def manager(self) -> Node:
        return self.nodes[0]

    @property
    def user_image(self) -> str:
        """The hub's docker_image: the registry's copy of the single-user image."""
        return f"{self.registry}/{self.single_user_image}"

    def node(self, hostname: str) -> Node:
        return next(n for n in self.nodes if n.hostname == hostname)

    def registry_digest(self, image: str) -> str:
        """The digest the registry serves for image (a name in it, with its tag)."""
        name, tag = image.rsplit(":", 1)
        response = requests.head(
            f"http://{self.registry}/v2/{name}/manifests/{tag}",
            headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
            timeout=10,
        )
        assert response.status_code == 200, f"{image}: {response.status_code}"
        return str(response.headers["Docker-Content-Digest"])

    def hub_container(self) -> str:
        """A running, healthy hub task's container on the manager."""
        selector = ["label=com.docker.swarm.service.name=flaskhub_hub", "health=healthy"]
        out = self.manager.docker("ps", "-q", *(f"--filter={s}" for s in selector))
        return out.split()[0]

    def flaskhub(self, *args: str, input: str | None = None) -> str:
        return self.manager.docker(
            "exec", "-i", self.hub_container(), "flaskhub", *args, input=input or ""
        )

    def token(self, user: str) -> str:
        if user not in self.tokens:
            self.tokens[user] = self.flaskhub("token", user).strip().splitlines()[-1]
        return self.tokens[user]

    def api(self, method: str, path: str, *, node: int = 0, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"token {self.admin}"}
        url = f"{self.nodes[node].url}/hub/api{path}"
        return requests.request(method, url, headers=headers, timeout=60, **kwargs)

    def status(self, user: str, node: int, token: str | None = None, timeout: float = 10) -> int:
        """HTTP status of user's server's /api/status through node's CHP (0: no answer)."""
        headers = {"Authorization": f"token {token or self.token(user)}"}
        try:
            url = f"{self.nodes[node].url}/user/{user}/api/status"
            return requests.get(url, headers=headers, timeout=timeout).status_code
        except requests.RequestException:
            return 0

    def start(self, user: str) -> None:
        """Create user if needed, start their server and wait until it is ready."""
        self.api("POST", f"/users/{user}")
        response = self.api("POST", f"/users/{user}/server")
        assert response.status_code in (201, 202), response.text
        wait_for(lambda: self.ready(user), READY_WITHIN, 1)

    def ready(self, user: str) -> bool:
        server = self.api("GET", f"/users/{user}").json()["servers"].get("")
        if server is not None and server.get("pending") is None and not server["ready"]:
            failure = self.api("GET", f"/users/{user}").json()
            raise AssertionError(f"{user}'s server ended: {failure}")
        return bool(server and server["ready"])

    def stop(self, user: str) -> None:
        answer = self.api("DELETE", f"/users/{user}/server")
        assert answer.status_code in (202, 204), (answer.status_code, answer.text[:500])
        wait_for(lambda: not self.api("GET", f"/users/{user}").json()["servers"], 120, 1)

    def node_of(self, user: str) -> str:
        """The hostname of the node running user's server's task."""
        engine = self.manager.engine()
        service = engine.services.get(f"flaskhub-{user}")
        (task,) = [t for t in service.tasks() if t["Status"]["State"] == "running"]
        return str(engine.nodes.get(task["NodeID"]).attrs["Description"]["Hostname"])


def build_images() -> None:
    """The images the cluster needs besides the single-user one, made or built on the
    host's engine (cached there): the base images and the registry's
    (images/standins/make), the hub's and the proxy's (`docker-compose build`), the nodes'."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLASKHUB_", "CONFIGPROXY"))}
    env["CONFIGPROXY_AUTH_TOKEN"] = "unused"  # the file asks for it; a build uses none
    make = str(REPO / "images" / "standins" / "make")
    for command in ([make], [make, REGISTRY_IMAGE], ["docker-compose", "build", "hub", "proxy"]):
        subprocess.run(command, cwd=REPO, env=env, check=True, capture_output=True, timeout=1800)
    build_node_image()


def build_node_image() -> None:
    """The nodes' image (tests/cluster/Dockerfile), from its layer cache after the first."""
    assert DOCKER is not None
    subprocess.run(
        [DOCKER, "build", "-q", "-t", NODE_IMAGE, str(REPO / "tests" / "cluster")],
        check=True,
        capture_output=True,
        timeout=600,
    )


def _node(client: docker.DockerClient, name: str, index: int, folder: Path, subnet: str) -> Node:
    hostname = f"n{index}"
    socket_dir = folder / hostname
    socket_dir.mkdir()
    assert DOCKER is not None
    # The CLI: the SDK cannot say systempaths=unconfined (the engine wants it as empty
    # masked and read-only paths, which the CLI makes of it).
    started = subprocess.run(
        [
            *(DOCKER, "run", "-d", "--name", f"{name}-{hostname}", "--hostname", hostname),
            *("--network", name, "--label", f"{LABEL}={name}"),
            # DOCKER.md: --privileged fails on these hosts; this is what a node needs instead.
            *("--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE"),
            *("--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined"),
            *("--security-opt", "systempaths=unconfined"),
            *("-v", f"{name}-{hostname}:/var/lib/docker", "-v", f"{socket_dir}:/node"),
            NODE_IMAGE,
            # The registry at the manager's address, over plain HTTP (README: Deploying a
            # stack): what an operator's daemon.json says with insecure-registries.
            f"--insecure-registry={subnet}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert started.returncode == 0, started.stderr
    container = client.containers.get(f"{name}-{hostname}")
    return Node(container=container, socket=socket_dir / "docker.sock", hostname=hostname)


def load_images(nodes: list[Node], folder: Path, *images: str) -> None:
    """docker save once, docker load into every node at once."""
    assert DOCKER is not None
    tar = folder / "images.tar"
    subprocess.run([DOCKER, "save", "-o", str(tar), *images], check=True, timeout=600)
    try:
        loads = [
            subprocess.Popen(
                [DOCKER, "-H", f"unix://{node.socket}", "load", "-q", "-i", str(tar)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            for node in nodes
        ]
        for load in loads:
            _, err = load.communicate(timeout=600)
            assert load.returncode == 0, err
    finally:
        tar.unlink()


def push(manager: Node, single_user_image: str) -> None:
    """The README's push step against the manager's engine: docker/push, the hub, proxy
    and single-user images into the stack's registry at 127.0.0.1 there."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLASKHUB_")}
    env |= {"DOCKER_HOST": f"unix://{manager.socket}", "FLASKHUB_DOCKER_IMAGE": single_user_image}
    result = subprocess.run(
        [str(REPO / "docker" / "push"), "--no-build", f"127.0.0.1:{REGISTRY_PORT}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def remove(client: docker.DockerClient, name: str) -> None:
    """The node containers, their volumes and the network: what the cluster name made."""
    for container in client.containers.list(all=True, filters={"label": f"{LABEL}={name}"}):
        container.remove(force=True, v=True)
    volumes = [v.name for v in client.volumes.list(filters={"name": name})]
    volumes = [v for v in volumes if v.startswith(f"{name}-n")]
    if volumes:
        # The CLI, with time enough: deleting a node's engine (its images, the registry's
        # storage) takes a minute or more on a loaded host, past the SDK client's timeout.
        assert DOCKER is not None
        subprocess.run([DOCKER, "volume", "rm", "-f", *volumes], check=True, timeout=600)
    for network in client.networks.list(names=[name]):
        if network.name == name:
            network.remove()


def health(node: Node) -> bool:
    """Whether node's CHP reaches a hub (its /hub/health)."""
    try:
        return requests.get(f"{node.url}/hub/health", timeout=5).status_code == 200
    except requests.RequestException:
        return False


@contextlib.contextmanager
def running(
    client: docker.DockerClient,
    name: str,
    folder: Path,
    single_user_image: str,
    placement: str = '["node.role == worker"]',
) -> Iterator[Cluster]:
    """A cluster named name (its images built first: build_images), the stack deployed
    and serving on every node, users' servers placed by placement (swarm_placement), an
    admin and their token; removed at the end."""
    client.networks.create(name, driver="bridge", labels={LABEL: name})
    nodes: list[Node] = []
    try:
        network = client.networks.get(name)
        subnet = network.attrs["IPAM"]["Config"][0]["Subnet"]
        nodes += [_node(client, name, i, folder, subnet) for i in (1, 2, 3)]
        for node in nodes:
            node.container.reload()
            node.ip = node.container.attrs["NetworkSettings"]["Networks"][name]["IPAddress"]
            wait_for(node.answers, 60, 0.5)
        manager, *workers = nodes
        load_images([manager], folder, HUB_IMAGE, PROXY_IMAGE, single_user_image, *MANAGER_ONLY)
        manager.docker("swarm", "init", "--advertise-addr", manager.ip)
        join = manager.docker("swarm", "join-token", "-q", "worker").strip()
        for worker in workers:
            worker.docker("swarm", "join", "--token", join, f"{manager.ip}:2377")
        cluster = Cluster(
            nodes=nodes,
            db_password=secrets.token_hex(16),
            registry=f"{manager.ip}:{REGISTRY_PORT}",
            single_user_image=single_user_image,
        )
        _deploy(cluster, placement)
        # The README's order: the stack (its registry starts, the rest waits for images),
        # then the push; the swarm starts the tasks that found no image again.
        push(manager, single_user_image)
        for node in nodes:
            wait_for(lambda node=node: health(node), 240, 1)
        out = cluster.flaskhub(
            "user", "add", "admin", "--admin", "--password-stdin", input=PASSWORD
        )
        assert "admin" in out
        cluster.admin = cluster.token("admin")
        yield cluster
    finally:
        for node in nodes:
            if node.client is not None:
                node.client.close()
        remove(client, name)


def _deploy(cluster: Cluster, placement: str) -> None:
    """docker stack deploy of docker/stack.yml on the manager, as the README says."""
    for secret in ("proxy_token", "cookie_secret"):
        cluster.manager.docker(
            "secret", "create", f"flaskhub_{secret}", "-", input=secrets.token_hex(32)
        )
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLASKHUB_")}
    env |= {
        "FLASKHUB_DB_PASSWORD": cluster.db_password,
        "FLASKHUB_REGISTRY": cluster.registry,
        "FLASKHUB_DOCKER_IMAGE": cluster.single_user_image,
        "FLASKHUB_SWARM_PLACEMENT": placement,
    }
    cluster.manager.docker(
        "stack", "deploy", "-c", str(REPO / "docker" / "stack.yml"), "flaskhub", env=env
    )
