"""docker/stack.yml on a real swarm of three nodes: docker-in-docker nodes on this host.

Each node is a container of tests/cluster's image running Debian's dockerd (DOCKER.md:
no --privileged here, cgroups remounted read-write, stale pid files removed), on a
bridge network of the module's own; the host drives each node's engine through a
socket in a bind-mounted folder. n1 is the one manager (the hubs and the database),
n2 and n3 are workers, where users' servers run (FLASKHUB_SWARM_PLACEMENT). Every node
runs a CHP, so each node's port 8000 serves every user. The images reach the nodes by
`docker save | docker load` (no registry answers here).

The tests run in order on one cluster: servers reached through every node, a home that
follows its user, a node without the image, a node killed, then a rolling upgrade of
the hubs to a new image with a migration under load. Everything the module made
(node containers, their volumes, the network) goes at the end; the swarm lives inside
the nodes, so the host's engine is never a swarm because of it.
"""

from __future__ import annotations

import html
import os
import secrets
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import pytest
import requests
from docker.models.containers import Container

from tests.helpers import wait_for
from tests.integration.docker_engine import REPO, docker_client  # noqa: F401 (fixture)
from tests.integration.test_compose_stack import IMAGE, compose_images, login  # noqa: F401

pytestmark = [pytest.mark.integration, pytest.mark.docker]

NAME = f"fhcluster{secrets.token_hex(3)}"
NODE_IMAGE = "flaskhub/test-node:bookworm"
HUB_IMAGE = "flaskhub/hub:0.1.0"
NEXT_HUB_IMAGE = f"flaskhub/hub:{NAME}-next"
IMAGES = (HUB_IMAGE, "flaskhub/proxy:0.1.0", IMAGE, "postgres:15")
DOCKER = shutil.which("docker")
# Debian's docker.io 20.10 in the nodes: asked for no version, the SDK asks first.
API = "1.41"
PASSWORD = "correct horse battery"
# What a swarm spawn of JupyterLab may take on a loaded 2-core host running three engines.
READY_WITHIN = 240


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
        """The docker CLI against this node's engine; its output (fails the test on error)."""
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
        """A client of this node's engine (one, kept until the module ends)."""
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


@dataclass
class Cluster:
    nodes: list[Node]
    db_password: str
    admin: str = ""
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def manager(self) -> Node:
        return self.nodes[0]

    def node(self, hostname: str) -> Node:
        return next(n for n in self.nodes if n.hostname == hostname)

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
        assert self.api("DELETE", f"/users/{user}/server").status_code in (202, 204)
        wait_for(lambda: not self.api("GET", f"/users/{user}").json()["servers"], 120, 1)

    def node_of(self, user: str) -> str:
        """The hostname of the node running user's server's task."""
        engine = self.manager.engine()
        service = engine.services.get(f"flaskhub-{user}")
        (task,) = [t for t in service.tasks() if t["Status"]["State"] == "running"]
        return str(engine.nodes.get(task["NodeID"]).attrs["Description"]["Hostname"])


def _node(client: docker.DockerClient, index: int, folder: Path) -> Node:
    hostname = f"n{index}"
    socket_dir = folder / hostname
    socket_dir.mkdir()
    assert DOCKER is not None
    # The CLI: the SDK cannot say systempaths=unconfined (the engine wants it as empty
    # masked and read-only paths, which the CLI makes of it).
    started = subprocess.run(
        [
            *(DOCKER, "run", "-d", "--name", f"{NAME}-{hostname}", "--hostname", hostname),
            *("--network", NAME, "--label", f"org.flaskhub.test={NAME}"),
            # DOCKER.md: --privileged fails on these hosts; this is what a node needs instead.
            *("--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE"),
            *("--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined"),
            *("--security-opt", "systempaths=unconfined"),
            *("-v", f"{NAME}-{hostname}:/var/lib/docker", "-v", f"{socket_dir}:/node"),
            NODE_IMAGE,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert started.returncode == 0, started.stderr
    container = client.containers.get(f"{NAME}-{hostname}")
    return Node(container=container, socket=socket_dir / "docker.sock", hostname=hostname)


def _load_images(nodes: list[Node], folder: Path, *images: str) -> None:
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


def _remove(client: docker.DockerClient) -> None:
    """The node containers, their volumes, the network and the next hub image: what this
    module made. A node's volume holds its images: removing it takes a minute or more."""
    timeout, client.api.timeout = client.api.timeout, 600
    try:
        for container in client.containers.list(
            all=True, filters={"label": f"org.flaskhub.test={NAME}"}
        ):
            container.remove(force=True, v=True)
        for volume in client.volumes.list(filters={"name": NAME}):
            if volume.name.startswith(f"{NAME}-n"):
                volume.remove(force=True)
        for network in client.networks.list(names=[NAME]):
            if network.name == NAME:
                network.remove()
        if client.images.list(name=NEXT_HUB_IMAGE):
            client.images.remove(NEXT_HUB_IMAGE, force=True)
    finally:
        client.api.timeout = timeout


@pytest.fixture(scope="module")
def cluster(
    compose_images: None,  # noqa: F811
    docker_client: docker.DockerClient,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Cluster]:
    if DOCKER is None:
        pytest.skip("the docker CLI is not installed")
    folder = tmp_path_factory.mktemp("cluster")
    subprocess.run(
        [DOCKER, "build", "-q", "-t", NODE_IMAGE, str(REPO / "tests" / "cluster")],
        check=True,
        capture_output=True,
        timeout=600,
    )
    docker_client.networks.create(NAME, driver="bridge", labels={"org.flaskhub.test": NAME})
    nodes: list[Node] = []
    try:
        nodes += [_node(docker_client, i, folder) for i in (1, 2, 3)]
        for node in nodes:
            node.container.reload()
            node.ip = node.container.attrs["NetworkSettings"]["Networks"][NAME]["IPAddress"]
            wait_for(node.answers, 60, 0.5)
        _load_images(nodes, folder, *IMAGES)
        manager, *workers = nodes
        manager.docker("swarm", "init", "--advertise-addr", manager.ip)
        join = manager.docker("swarm", "join-token", "-q", "worker").strip()
        for worker in workers:
            worker.docker("swarm", "join", "--token", join, f"{manager.ip}:2377")
        for name in ("proxy_token", "cookie_secret"):
            manager.docker("secret", "create", f"flaskhub_{name}", "-", input=secrets.token_hex(32))
        db_password = secrets.token_hex(16)
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLASKHUB_")}
        env |= {
            "FLASKHUB_DB_PASSWORD": db_password,
            "FLASKHUB_DOCKER_IMAGE": IMAGE,
            "FLASKHUB_SWARM_PLACEMENT": '["node.role == worker"]',
        }
        manager.docker(
            "stack", "deploy", "-c", str(REPO / "docker" / "stack.yml"), "flaskhub", env=env
        )
        cluster = Cluster(nodes=nodes, db_password=db_password)
        for node in nodes:
            wait_for(lambda node=node: _health(node), 240, 1)
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
        _remove(docker_client)


def _health(node: Node) -> bool:
    try:
        return requests.get(f"{node.url}/hub/health", timeout=5).status_code == 200
    except requests.RequestException:
        return False


def test_every_nodes_port_serves_each_user_through_its_own_chp(cluster: Cluster) -> None:
    # The hubs keep a CHP on every node: three instances, by the name proxy-api.
    logs = cluster.manager.hub_log()
    kept = {line.rsplit(" ", 1)[-1] for line in logs.splitlines() if "Keeping the routes" in line}
    assert len(kept) == 3, kept
    cluster.start("ann")
    cluster.start("ben")
    assert {cluster.node_of("ann"), cluster.node_of("ben")} <= {"n2", "n3"}  # workers only
    for node in range(3):
        assert cluster.status("ann", node) == 200
        assert cluster.status("ann", node, cluster.token("ben")) == 403


def test_a_users_home_follows_them_to_their_next_server(cluster: Cluster) -> None:
    token = cluster.token("ann")
    headers = {"Authorization": f"token {token}"}
    note = f"{cluster.nodes[1].url}/user/ann/api/contents/note.txt"
    body = {"type": "file", "format": "text", "content": "kept across servers"}
    assert requests.put(note, json=body, headers=headers, timeout=30).status_code in (200, 201)
    home = cluster.node_of("ann")
    cluster.stop("ann")
    cluster.start("ann")
    assert cluster.node_of("ann") == home
    read = requests.get(note, headers=headers, timeout=30)
    assert read.status_code == 200 and read.json()["content"] == "kept across servers"


def test_a_node_without_the_image_is_avoided_and_named(cluster: Cluster, tmp_path: Path) -> None:
    bare, other = cluster.node("n3"), cluster.node("n2")
    bare.docker("rmi", "-f", IMAGE)  # running servers keep theirs; no new task starts there
    cluster.manager.docker("node", "update", "--availability", "pause", other.hostname)
    try:
        cluster.api("POST", "/users/cy")
        assert cluster.api("POST", "/users/cy/server").status_code in (201, 202)

        # The task sent to n3 is rejected; the hub says so, naming the node.
        rejected = f"could not start its server on node {bare.hostname}: No such image"
        try:
            wait_for(lambda: rejected in cluster.manager.hub_log(), 120, 1)
        except AssertionError:
            tasks = cluster.manager.docker("service", "ps", "--no-trunc", "flaskhub-cy")
            raise AssertionError(f"{tasks}\n{cluster.manager.hub_log()[-3000:]}") from None
    finally:
        cluster.manager.docker("node", "update", "--availability", "active", other.hostname)
    # Tried again away from n3, where n2 takes it now.
    wait_for(lambda: cluster.ready("cy"), READY_WITHIN, 1)
    assert cluster.node_of("cy") == other.hostname
    _load_images([bare], tmp_path, IMAGE)


def test_a_lost_node_is_told_and_everyone_elses_server_keeps_working(cluster: Cluster) -> None:
    if not cluster.api("GET", "/users/ann").json().get("servers"):
        cluster.start("ann")  # the module's tests run alone too
    lost = cluster.node(cluster.node_of("ann"))
    kept = next(n for n in cluster.nodes[1:] if n is not lost)
    survivor = next(u for u in ("ben", "cy", "dee", "eve") if _started_on(cluster, u, kept))
    index = {n.hostname: i for i, n in enumerate(cluster.nodes)}
    lost.container.kill()
    t0 = time.monotonic()
    # Through the manager's CHP and the other worker's, the survivor works again within
    # 15 s (the swarm's overlay may lose a few packets as it drops the node), and stays.
    seen = []
    while time.monotonic() - t0 < 20:
        seen += [
            (round(time.monotonic() - t0, 1), node, cluster.status(survivor, node, timeout=2))
            for node in (0, index[kept.hostname])
        ]
    late = [s for s in seen if s[0] >= 15 and s[2] != 200]
    if late:
        diagnosis = _diagnose(cluster, kept, survivor)
        raise AssertionError(f"{survivor} on {kept.hostname}: {seen}\n{diagnosis}")
    # ann's server is reported gone within 30 s, and ann is told why.
    wait_for(lambda: not cluster.api("GET", "/users/ann").json()["servers"], 30, 0.5)
    assert time.monotonic() - t0 < 30
    page = requests.get(
        f"{cluster.manager.url}/hub/home",
        headers={"Authorization": f"token {cluster.token('ann')}"},
        timeout=30,
    )
    assert f"the machine it ran on ({lost.hostname}) is down" in html.unescape(page.text)
    # Logins and spawns go on, through the nodes left.
    login(kept, "admin", PASSWORD)  # type: ignore[arg-type] (it has the url a login needs)
    cluster.start("fay")
    assert cluster.node_of("fay") == kept.hostname
    # ann's home is on the lost node: no empty home elsewhere, until an admin says so.
    refused = cluster.api("POST", "/users/ann/server")
    assert refused.status_code == 503, refused.text
    assert "flaskhub server forget-home ann" in refused.json()["message"]
    cluster.flaskhub("server", "forget-home", "ann")
    cluster.start("ann")
    assert cluster.node_of("ann") == kept.hostname


def test_a_rolling_upgrade_with_a_migration_fails_no_request(
    cluster: Cluster, tmp_path: Path
) -> None:
    # ann's server (started again by the test before) knows ann's token before the load.
    wait_for(lambda: cluster.status("ann", 0) == 200, 30, 1)
    _build_next_hub_image(tmp_path)
    _load_images([cluster.manager], tmp_path, NEXT_HUB_IMAGE)
    probes = _probes(cluster)
    load = _Load(probes)
    load.start()
    try:
        cluster.manager.docker(
            "service", "update", "--detach=false", "--image", NEXT_HUB_IMAGE, "flaskhub_hub"
        )
    finally:
        load.finish()
    assert load.failures == [], load.failures[:10]
    assert load.done > 200
    # Every hub task runs the new image once the last old one has drained (drain_seconds).
    engine = cluster.manager.engine()

    def images() -> list[str]:
        running = [
            t
            for t in engine.services.get("flaskhub_hub").tasks()
            if t["Status"]["State"] == "running"
        ]
        return [t["Spec"]["ContainerSpec"]["Image"].split("@")[0] for t in running]

    wait_for(lambda: images() == [NEXT_HUB_IMAGE] * 2, 60, 0.5)
    db = cluster.manager.docker(
        "ps", "-q", "--filter=label=com.docker.swarm.service.name=flaskhub_db"
    ).split()[0]
    version = cluster.manager.docker(
        *("exec", "-e", f"PGPASSWORD={cluster.db_password}", db, "psql", "-h", "127.0.0.1"),
        *("-U", "flaskhub", "-d", "flaskhub", "-tAc", "SELECT version_num FROM alembic_version"),
    )
    assert version.strip() == "9001"
    # No server lost: ann's is the same task, still answering.
    assert cluster.status("ann", 0) == 200


def test_servers_reach_the_new_hubs_after_the_upgrade(cluster: Cluster) -> None:
    """A token the server has not seen yet is checked with the hub, through CHP: its
    resolver keeps `hub`'s old addresses for Docker's DNS TTL (600 s), CHP's stay."""
    fresh = cluster.flaskhub("token", "ann").strip().splitlines()[-1]
    assert cluster.status("ann", 0, fresh) == 200


def _diagnose(cluster: Cluster, kept: Node, user: str) -> str:
    """What the nodes say when a user's server stops answering (a test's failure text)."""
    out = []
    for node in (cluster.manager, kept):
        for name in ("flaskhub_proxy", f"flaskhub-{user}", "flaskhub_hub"):
            ids = node.docker("ps", "-q", f"--filter=label=com.docker.swarm.service.name={name}")
            for cid in ids.split():
                logs = subprocess.run(
                    [
                        DOCKER or "docker",
                        "-H",
                        f"unix://{node.socket}",
                        "logs",
                        "--tail",
                        "15",
                        cid,
                    ],
                    capture_output=True,
                    text=True,
                    timeout=30,
                )
                tail = logs.stdout[-1500:] + logs.stderr[-1500:]
                out.append(f"== {node.hostname} {name}\n{tail}")
    return "\n".join(out)


def _running(node: Node) -> bool:
    """Whether the node's container runs (the host's engine says; the node's may not)."""
    node.container.reload()
    return node.container.status == "running"


def _started_on(cluster: Cluster, user: str, node: Node) -> bool:
    """Whether user's server runs on node, starting it (once) if user has none."""
    if not cluster.api("GET", f"/users/{user}").json().get("servers"):
        cluster.start(user)
    return cluster.node_of(user) == node.hostname


def _build_next_hub_image(folder: Path) -> None:
    """The hub image with one more migration (a new table, as an additive upgrade has)."""
    from alembic.script import ScriptDirectory

    from app.migrations import alembic_config

    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    (folder / "9001_rolling_upgrade.py").write_text(
        f'''"""a table the next version adds (tests/integration/test_cluster.py)"""
import sqlalchemy as sa
from alembic import op

revision = "9001"
down_revision = "{head}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("rolling_upgrade_probe", sa.Column("id", sa.Integer, primary_key=True))


def downgrade() -> None:
    op.drop_table("rolling_upgrade_probe")
'''
    )
    (folder / "Dockerfile").write_text(
        f"FROM {HUB_IMAGE}\n"
        "COPY 9001_rolling_upgrade.py /tmp/\n"
        # From /: the installed package, which `flaskhub run` imports (not WORKDIR's copy).
        "RUN cd / && cp /tmp/9001_rolling_upgrade.py \"$(python3 -c 'import app.migrations as m, "
        "os; print(os.path.dirname(m.__file__))')/versions/\"\n"
    )
    assert DOCKER is not None
    subprocess.run(
        [DOCKER, "build", "-q", "-t", NEXT_HUB_IMAGE, str(folder)],
        check=True,
        capture_output=True,
        timeout=300,
    )


def _probes(cluster: Cluster) -> list[tuple[str, dict[str, str]]]:
    """What the load loop asks, through every node's CHP: health, a page, the API, a server."""
    admin = {"Authorization": f"token {cluster.admin}"}
    ann = {"Authorization": f"token {cluster.token('ann')}"}
    paths = [
        ("/hub/health", {}),
        ("/hub/login", {}),
        ("/hub/api/users/ann", admin),
        ("/user/ann/api/status", ann),
    ]
    live = [node for node in cluster.nodes if _running(node)]  # one was killed before
    return [(f"{node.url}{path}", headers) for node in live for path, headers in paths]


class _Load:
    """A bounded load loop in three threads: each request's answer must be below 400."""

    def __init__(self, probes: list[tuple[str, dict[str, str]]], limit: float = 300) -> None:
        self.probes = probes
        self.deadline = time.monotonic() + limit
        self.stopping = threading.Event()
        self.done = 0
        self.failures: list[str] = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(i,)) for i in range(3)]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def finish(self) -> None:
        time.sleep(3)  # a little after the update, too
        self.stopping.set()
        for thread in self.threads:
            thread.join()

    def _run(self, offset: int) -> None:
        session = requests.Session()
        i = offset
        while not self.stopping.is_set() and time.monotonic() < self.deadline:
            url, headers = self.probes[i % len(self.probes)]
            i += 1
            try:
                status = session.get(url, headers=headers, timeout=15, allow_redirects=False)
                failure = None
                if status.status_code >= 400:
                    failure = f"{url}: {status.status_code} {status.text[:300]!r}"
            except requests.RequestException as e:
                failure = f"{url}: {e}"
            with self.lock:
                self.done += 1
                if failure:
                    self.failures.append(failure)
