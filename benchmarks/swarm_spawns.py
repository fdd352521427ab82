"""Time SPAWNS concurrent spawns over a 3-node swarm through the hub against the same
swarm services created directly with the Docker SDK on the manager.

The cluster is the one tests/integration/test_cluster.py runs (tests/cluster/cluster.py:
three docker-in-docker nodes, docker/stack.yml deployed, the images pulled from the
stack's registry), here with users' servers on every node. Through the hub: SPAWNS users,
all their servers requested at once over the REST API, timed until the API says each is
ready (its task runs, its server answered HTTP, every node's CHP routes it). Directly:
the services the hub made in that round (their specs read before the hub stops them,
under other names), each with an overlay network of its own as the hub makes in the
stack's "published" mode, created at once with the SDK on the manager's engine, timed
until each server answers HTTP as the hub asks it (any answer at /user/<name>/) at its
node's address and published port. Rounds alternate (the machine is shared and
noisy): each round's figures and ratio, then the medians, are printed. Every image is
pulled on every node before the first round, so neither side waits for a pull.

It runs the built-in server's image (`images/build builtin`, which it calls), as
container_spawns.py does: it times the hub's part of a spawn, which JupyterLab's few
seconds of start-up (times SPAWNS on 2 cores) would drown. Needs root, a Docker engine,
docker-compose; not while tests run. The cluster is removed at the end.

    .venv/bin/python benchmarks/swarm_spawns.py [--spawns 30] [--rounds 2]
"""

from __future__ import annotations

import argparse
import http.client
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import docker  # noqa: E402
from docker.models.nodes import Node  # noqa: E402

from app.spawners.swarm import node_address, published_port  # noqa: E402
from tests.cluster.cluster import API, Cluster, build_images, running  # noqa: E402
from tests.helpers import wait_for  # noqa: E402
from tests.integration.docker_engine import BUILTIN_IMAGE  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
NAME = f"fhbenchswarm{secrets.token_hex(3)}"
BENCH_LABEL = "org.flaskhub.bench"
PORT = 8888
# Seconds one round's spawns may take, each side (a bound, not a goal).
TIMEOUT = 600


def through_the_hub(cluster: Cluster, names: list[str]) -> float:
    """Seconds from requesting every server at once until the API says each is ready."""
    t0 = time.perf_counter()
    with ThreadPoolExecutor(len(names)) as pool:
        answers = list(pool.map(lambda n: cluster.api("POST", f"/users/{n}/server"), names))
    assert all(r.status_code in (201, 202) for r in answers), [r.text for r in answers]
    wait_for(lambda: set(names) <= ready(cluster), TIMEOUT, 0.1)
    return time.perf_counter() - t0


def ready(cluster: Cluster) -> set[str]:
    """The users whose default server the hub reports ready (one request)."""
    users = cluster.api("GET", "/users").json()
    return {u["name"] for u in users if (u.get("servers") or {}).get("", {}).get("ready")}


def stop_all(cluster: Cluster, names: list[str]) -> None:
    """Stop every server through the hub, one at a time, and wait until their services
    are gone. Not at once: 30 services removed together crashed the manager's dockerd
    (Debian's 20.10.24: a nil task in swarmkit's SetServiceTasksRemove) in one run."""
    for name in names:
        cluster.api("DELETE", f"/users/{name}/server")
        wait_for(lambda name=name: name not in _active(cluster), TIMEOUT, 0.2)
    wait_for(lambda: not ready(cluster) & set(names), TIMEOUT, 0.5)
    engine = cluster.manager.engine()
    wait_for(lambda: not engine.services.list(filters={"name": "flaskhub-user"}), TIMEOUT, 0.5)


def _active(cluster: Cluster) -> set[str]:
    """The users with a server the hub has not finished stopping."""
    return {u["name"] for u in cluster.api("GET", "/users").json() if u.get("servers")}


def service_spec(engine: docker.DockerClient, name: str) -> dict[str, Any]:
    """The spec of the service the hub made for name, relabelled and renamed bench-<name>."""
    spec = dict(engine.services.get(f"flaskhub-{name}").attrs["Spec"])
    spec["Name"] = f"bench-{name}"
    spec["Labels"] = {BENCH_LABEL: NAME}
    spec["TaskTemplate"]["ContainerSpec"]["Labels"] = {BENCH_LABEL: NAME}
    return spec


def directly(cluster: Cluster, specs: dict[str, dict[str, Any]]) -> float:
    """Seconds from creating every service at once (each with an overlay network of its
    own, as the hub makes in "published" mode) until each one's server answers at its
    node's address and published port, as the hub and CHP reach it."""
    client = docker.APIClient(
        base_url=f"unix://{cluster.manager.socket}", version=API, timeout=60, max_pool_size=64
    )
    nodes = {n["ID"]: node_address(Node(attrs=n)) for n in client.nodes()}

    def create(spec: dict[str, Any]) -> None:
        network = client.create_network(
            spec["Name"], driver="overlay", labels={BENCH_LABEL: NAME}, check_duplicate=True
        )
        template = {**spec["TaskTemplate"], "Networks": [{"Target": network["Id"]}]}
        client.create_service(
            template,
            name=spec["Name"],
            labels=spec["Labels"],
            mode=spec.get("Mode"),
            endpoint_spec=spec.get("EndpointSpec"),
        )

    def answers(name: str, path: str) -> bool:
        for task in client.tasks(filters={"service": name, "desired-state": "running"}):
            port = published_port(task, PORT)
            if task["Status"]["State"] != "running" or not port:
                continue
            connection = http.client.HTTPConnection(nodes[task["NodeID"]], port, timeout=2)
            try:
                connection.request("GET", path)
                connection.getresponse()
            except OSError:
                return False
            finally:
                connection.close()
            return True
        return False

    waiting = {s["Name"]: f"/user/{n}/" for n, s in specs.items()}
    t0 = time.perf_counter()
    try:
        with ThreadPoolExecutor(len(specs)) as pool:
            list(pool.map(create, specs.values()))
            while waiting and time.perf_counter() - t0 < TIMEOUT:
                done = pool.map(lambda item: answers(*item), waiting.items())
                for name, answered in zip(list(waiting), done, strict=True):
                    if answered:
                        del waiting[name]
                time.sleep(0.05)
        assert not waiting, f"never answered: {sorted(waiting)}"
        return time.perf_counter() - t0
    finally:
        remove_direct(client)
        client.close()


def remove_direct(client: docker.APIClient) -> None:
    """The services created directly, their tasks' containers on every node, and their
    networks."""
    mine = {"label": f"{BENCH_LABEL}={NAME}"}
    for service in client.services(filters=mine):
        client.remove_service(service["ID"])
    gone = {**mine, "desired-state": "running"}
    wait_for(lambda: not client.tasks(filters=gone), TIMEOUT, 0.5)
    # A network goes once no task on any node holds it any more.
    for network in client.networks(filters=mine):
        wait_for(lambda network=network: _removed(client, network["Id"]), TIMEOUT, 0.5)


def _removed(client: docker.APIClient, network: str) -> bool:
    try:
        client.remove_network(network)
    except docker.errors.NotFound:
        return True
    except docker.errors.APIError:
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spawns", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    build_images()
    subprocess.run([str(REPO / "images" / "build"), "builtin"], check=True)
    client = docker.from_env(timeout=120)
    names = [f"user{i}" for i in range(args.spawns)]
    hub_times: list[float] = []
    direct_times: list[float] = []
    folder = Path(tempfile.mkdtemp(prefix="flaskhub-bench-swarm-"))
    try:
        with running(client, NAME, folder, BUILTIN_IMAGE, placement="[]") as cluster:
            for node in cluster.nodes:
                node.docker("pull", "-q", cluster.user_image)
            cluster.api("POST", "/users", json={"usernames": names})
            for _ in range(args.rounds):
                hub_times.append(through_the_hub(cluster, names))
                print(f"hub {hub_times[-1]:.2f} s; hub tasks so far: {_hub_tasks(cluster)}")
                engine = cluster.manager.engine()
                specs = {n: service_spec(engine, n) for n in names}
                spread = _spread(cluster, names)
                stop_all(cluster, names)
                direct_times.append(directly(cluster, specs))
                ratio = hub_times[-1] / direct_times[-1]
                print(
                    f"round: hub {hub_times[-1]:.2f} s   SDK {direct_times[-1]:.2f} s   "
                    f"{ratio:.2f}x   servers per node {spread}",
                    flush=True,
                )
    finally:
        client.close()
        shutil.rmtree(folder, ignore_errors=True)
    via_hub, direct = statistics.median(hub_times), statistics.median(direct_times)
    print(f"{args.spawns} concurrent spawns through the hub, until ready:    {via_hub:6.2f} s")
    print(f"{args.spawns} services created with the SDK, until answering: {direct:6.2f} s")
    ratios = [h / d for h, d in zip(hub_times, direct_times, strict=True)]
    print(f"ratio hub / SDK: {statistics.median(ratios):.2f}x (median of {args.rounds} rounds)")


def _hub_tasks(cluster: Cluster) -> int:
    """How many tasks the hub service has had (2 unless the swarm replaced one)."""
    return len(cluster.manager.engine().services.get("flaskhub_hub").tasks())


def _spread(cluster: Cluster, names: list[str]) -> dict[str, int]:
    """How many of the servers each node runs."""
    counts: dict[str, int] = {}
    for name in names:
        node = cluster.node_of(name)
        counts[node] = counts.get(node, 0) + 1
    return dict(sorted(counts.items()))


if __name__ == "__main__":
    main()
