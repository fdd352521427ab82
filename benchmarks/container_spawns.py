"""Time SPAWNS concurrent container spawns through the hub against the same containers
started directly with the Docker SDK.

Through the hub: `flaskhub run` with `spawner = "docker"` (as the integration tests
start it, real CHP), SPAWNS users, then all their servers requested at once over the
REST API, timed until CHP routes every one (the hub adds a route once the server
answers HTTP). Directly: the same image, environment, home volume, network and
limits, SPAWNS `containers.run` at once, timed until every server's port accepts
connections. Rounds alternate (the machine is shared and noisy): each round's
ratio, the medians and the median of the rounds' ratios are printed.
Needs a Docker engine; not while tests run. It runs the built-in server's image
(`images/build builtin`, which it calls): it times the hub's part of a spawn, which
JupyterLab's few seconds of start-up in the default image would drown.

    .venv/bin/python benchmarks/container_spawns.py [--spawns 10] [--rounds 5]
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import socket
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
from docker.models.containers import Container  # noqa: E402

from app.spawners.docker import LABEL_HUB  # noqa: E402
from tests.helpers import wait_for  # noqa: E402
from tests.integration.conftest import Hub, hub_env, start_hub  # noqa: E402
from tests.integration.docker_engine import BUILTIN_IMAGE, remove_labelled  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PREFIX = f"fhbench-{secrets.token_hex(3)}"
PORT = 8888
TIMEOUT = 300


def through_the_hub(hub: Hub, names: list[str]) -> float:
    """Seconds from requesting every server at once until CHP routes them all."""
    t0 = time.perf_counter()
    with ThreadPoolExecutor(len(names)) as pool:
        answers = list(pool.map(lambda n: hub.api("POST", f"/users/{n}/server"), names))
    assert all(r.status_code in (201, 202) for r in answers), [r.text for r in answers]
    wanted = {f"/user/{name}" for name in names}
    wait_for(lambda: wanted <= {path.rstrip("/") for path in hub.routes()}, TIMEOUT, 0.05)
    return time.perf_counter() - t0


def stop_all(hub: Hub, names: list[str]) -> None:
    with ThreadPoolExecutor(len(names)) as pool:
        list(pool.map(lambda n: hub.api("DELETE", f"/users/{n}/server"), names))
    wait_for(lambda: not any(hub.api("GET", f"/users/{n}").json()["servers"] for n in names), 120)


def run_options(container: Container) -> dict[str, Any]:
    """What the hub gave a container, as arguments of containers.run."""
    config, host = container.attrs["Config"], container.attrs["HostConfig"]
    return {
        "image": config["Image"],
        "environment": config["Env"],
        "volumes": {
            m["Name"]: {"bind": m["Destination"], "mode": "rw"}
            for m in container.attrs["Mounts"]
            if m["Type"] == "volume"
        },
        "network": next(iter(container.attrs["NetworkSettings"]["Networks"])),
        "mem_limit": host["Memory"] or None,
        "nano_cpus": host["NanoCpus"] or None,
        "labels": {LABEL_HUB: PREFIX},
    }


def directly(client: docker.DockerClient, options: list[dict[str, Any]]) -> float:
    """Seconds from starting every container at once until each one's port accepts."""

    def start(opts: dict[str, Any]) -> None:
        container = client.containers.run(detach=True, **opts)
        network = opts["network"]

        def listening() -> bool:
            container.reload()
            ip = container.attrs["NetworkSettings"]["Networks"][network]["IPAddress"]
            try:
                socket.create_connection((ip, PORT), timeout=1).close()
                return True
            except OSError:
                return False

        wait_for(listening, TIMEOUT, 0.05)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(len(options)) as pool:
        list(pool.map(start, options))
    elapsed = time.perf_counter() - t0
    for container in client.containers.list(all=True, filters={"label": f"{LABEL_HUB}={PREFIX}"}):
        container.remove(force=True)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spawns", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    subprocess.run([str(REPO / "images" / "build"), "builtin"], check=True)
    client = docker.from_env(timeout=60)
    folder = Path(tempfile.mkdtemp(prefix="flaskhub-bench-"))
    data_dir = folder / "data"
    settings = {
        "spawner": "docker",
        "docker_prefix": PREFIX,
        "docker_image": BUILTIN_IMAGE,
        "cleanup_servers": True,
    }
    hub = start_hub(data_dir, hub_env(data_dir, **settings))
    names = [f"user{i}" for i in range(args.spawns)]
    hub_times, direct_times = [], []
    try:
        for name in names:
            hub.api("POST", f"/users/{name}")
        for _ in range(args.rounds):
            hub_times.append(through_the_hub(hub, names))
            options = [run_options(client.containers.get(f"{PREFIX}-{n}")) for n in names]
            stop_all(hub, names)
            direct_times.append(directly(client, options))
            ratio = hub_times[-1] / direct_times[-1]
            print(
                f"round: hub {hub_times[-1]:.2f} s   SDK {direct_times[-1]:.2f} s   {ratio:.2f}x",
                flush=True,
            )
    finally:
        hub.stop()
        remove_labelled(client, PREFIX)
        client.close()
        shutil.rmtree(folder, ignore_errors=True)
    via_hub, direct = statistics.median(hub_times), statistics.median(direct_times)
    print(f"{args.spawns} concurrent spawns through the hub, until routed:  {via_hub:6.2f} s")
    print(f"{args.spawns} containers started with the SDK, until listening: {direct:6.2f} s")
    ratios = [h / d for h, d in zip(hub_times, direct_times, strict=True)]
    print(f"ratio hub / SDK: {statistics.median(ratios):.2f}x (median of {args.rounds} rounds)")


if __name__ == "__main__":
    main()
