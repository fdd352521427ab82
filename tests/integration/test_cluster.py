"""docker/stack.yml on a real swarm of three nodes: docker-in-docker nodes on this host.

The cluster is tests/cluster/cluster.py's (n1 the manager: hubs, database, registry; n2
and n3 workers, where users' servers run; a CHP on each): the images reach the workers
by pulling from the stack's registry, into which docker/push put them.

The tests run in order on one cluster: servers reached through every node (their image
pulled from the registry), a home that follows its user, a node without the image, a
node killed, then a rolling upgrade of the hubs to a new image with a migration under
load. Everything the module made (node containers, their volumes, the network, the next
hub image) goes at the end; the swarm lives inside the nodes, so the host's engine is
never a swarm because of it.
"""

from __future__ import annotations

import html
import secrets
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
import requests

from tests.cluster.cluster import (
    DOCKER,
    HUB_IMAGE,
    PASSWORD,
    PROXY_IMAGE,
    READY_WITHIN,
    REGISTRY_IMAGE,
    Cluster,
    Node,
    build_node_image,
    load_images,
    running,
)
from tests.helpers import wait_for
from tests.integration.docker_engine import MAKES_IMAGES, REPO, docker_client  # noqa: F401 (fixture)
from tests.integration.test_compose_stack import IMAGE, compose_images, login  # noqa: F401

pytestmark = [pytest.mark.integration, pytest.mark.docker, MAKES_IMAGES]

NAME = f"fhcluster{secrets.token_hex(3)}"
NEXT_HUB_IMAGE = f"flaskhub/hub:{NAME}-next"


@pytest.fixture(scope="module")
def cluster(
    compose_images: None,  # noqa: F811
    docker_client: docker.DockerClient,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Cluster]:
    if DOCKER is None:
        pytest.skip("the docker CLI is not installed")
    make = [str(REPO / "images" / "standins" / "make"), REGISTRY_IMAGE]
    subprocess.run(make, check=True, capture_output=True, timeout=900)
    build_node_image()
    try:
        with running(docker_client, NAME, tmp_path_factory.mktemp("cluster"), IMAGE) as cluster:
            yield cluster
    finally:
        if docker_client.images.list(name=NEXT_HUB_IMAGE):
            docker_client.images.remove(NEXT_HUB_IMAGE, force=True)


def test_every_nodes_port_serves_each_user_through_its_own_chp(cluster: Cluster) -> None:
    # The hubs keep a CHP on every node: three instances, by the name proxy-api (found at
    # the reconcile loop's ticks: the last node's CHP may come up after the hubs).
    def kept() -> set[str]:
        lines = cluster.manager.hub_log().splitlines()
        return {line.rsplit(" ", 1)[-1] for line in lines if "Keeping the routes" in line}

    wait_for(lambda: len(kept()) == 3, timeout=120, interval=1)
    cluster.start("ann")
    cluster.start("ben")
    assert {cluster.node_of("ann"), cluster.node_of("ben")} <= {"n2", "n3"}  # workers only
    # The workers were given no image: their tasks pulled the registry's copies.
    for hostname in {cluster.node_of(user) for user in ("ann", "ben")}:
        worker = cluster.node(hostname)
        for image in (IMAGE, PROXY_IMAGE):
            name = image.rsplit(":", 1)[0]
            pulled = f"{cluster.registry}/{name}@{cluster.registry_digest(image)}"
            assert pulled in worker.repo_digests(f"{cluster.registry}/{image}"), worker.hostname
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


def test_a_node_without_the_image_is_avoided_and_named(cluster: Cluster) -> None:
    bare, other = cluster.node("n3"), cluster.node("n2")
    image = cluster.user_image
    if not other.repo_digests(image):
        other.docker("pull", image)
    # The image on n2 only, and nowhere to pull it from: n3 loses its copy (running servers
    # keep theirs) while the registry is stopped.
    bare.docker("rmi", "-f", image)
    cluster.manager.docker("service", "scale", "--detach=false", "flaskhub_registry=0")
    try:
        _spawn_away_from(cluster, bare, other)
    finally:
        cluster.manager.docker("service", "scale", "--detach=false", "flaskhub_registry=1")


def _spawn_away_from(cluster: Cluster, bare: Node, other: Node) -> None:
    """cy's spawn goes to bare first (other paused), is rejected there, and lands on other."""
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
    load_images([cluster.manager], tmp_path, NEXT_HUB_IMAGE)
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
