"""Fixtures for tests against a real Docker engine: the engine, the images, and cleanup.

`docker_client` is a client of a running engine: dockerd is started (and stopped
at the end) if none answers and we are root; without one the tests skip with
the reason, but under CI=true that is a failure. `docker_images` builds the
single-user image of FlaskHub's built-in server (and, without a registry, its base)
with `images/build builtin`: the spawner's tests use it, it starts in a second (the
default image, JupyterLab, is tested by test_compose_stack.py).
`docker_swarm` makes the engine a single-node swarm for the session unless it is
a swarm manager already. Import the fixtures into a test module to use them.

A rebuild under the same tag (images/build, `docker-compose build`, the cluster's next
hub image) leaves the image it replaced with no name: at the end `docker_client`
removes each such image the session left (`remove_orphaned_images`), so a developer's
engine does not gain one at every run after a change to the code. It also removes the
group the engine made for the user containers (`server_cgroup`), if it was not there.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from docker.models.containers import Container

from app.config import Settings
from app.spawners.docker import LABEL_HUB
from app.spawners.swarm import GWBRIDGE
from app.version import __version__
from tests.helpers import wait_for
from tests.integration.conftest import Hub

REPO = Path(__file__).resolve().parents[2]
BUILD_TIMEOUT = 900
BUILTIN_IMAGE = f"flaskhub/singleuser-builtin:{__version__}"


def _socket_answers() -> bool:
    """False if the engine is on a unix socket (the default) that nobody listens on."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if not host.startswith("unix://"):
        return True
    with socket.socket(socket.AF_UNIX) as sock:
        try:
            sock.connect(host[len("unix://") :])
        except OSError:
            return False
    return True


def _client() -> docker.DockerClient | None:
    """A client of an engine that answers, or None."""
    # docker.from_env() leaves its socket unclosed when the engine is not there
    # (a ResourceWarning, an error under filterwarnings): look first.
    if not _socket_answers():
        return None
    try:
        client = docker.from_env(timeout=30)
    except docker.errors.DockerException:
        return None
    try:
        client.ping()
    except docker.errors.DockerException:
        client.close()
        return None
    return client


def _no_engine(reason: str) -> None:
    """Skip, or fail under CI (where the engine is part of the test run)."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)


def _start_dockerd(workdir: Path) -> subprocess.Popen[bytes]:
    """Start dockerd in the background and wait until it answers."""
    with (workdir / "dockerd.log").open("wb") as log:
        process = subprocess.Popen(
            ["dockerd", "--pidfile", str(workdir / "dockerd.pid")],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def answers() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"dockerd exited: see {workdir / 'dockerd.log'}")
        client = _client()
        if client is not None:
            client.close()
        return client is not None

    wait_for(answers, timeout=60, interval=0.2)
    return process


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    """A client of a running engine; dockerd is started for the session if need be."""
    client = _client()
    started = None
    if client is None:
        if shutil.which("dockerd") is None or os.geteuid() != 0:
            _no_engine("no Docker engine answers (and dockerd cannot be started here)")
        workdir = Path(tempfile.mkdtemp(prefix="flaskhub-dockerd-"))
        started = _start_dockerd(workdir)
        client = _client()
        assert client is not None
    images, groups = image_names(client), server_groups()
    yield client
    remove_orphaned_images(client, images)
    remove_groups(server_groups() - groups)
    client.close()
    if started is not None:
        started.terminate()
        started.wait(timeout=60)
        shutil.rmtree(workdir)  # its log and pid file


def image_names(client: docker.DockerClient) -> dict[str, bool]:
    """Each image's id, and whether it has a name (a tag) now."""
    # The low-level list: one call (images.list asks the engine again for each image).
    return {
        image["Id"]: any(tag != "<none>:<none>" for tag in image.get("RepoTags") or ())
        for image in client.api.images(all=True)
    }


def remove_orphaned_images(client: docker.DockerClient, before: dict[str, bool]) -> list[str]:
    """Remove each image that has no name now but had one, or was not there, `before`;
    the ids removed. An image with no name before is left, and so is one a container
    still uses (the engine refuses: noted on stdout)."""
    removed = []
    for image_id in client.api.images(filters={"dangling": True}, quiet=True):
        if before.get(image_id, True):
            try:
                client.images.remove(image_id)
            except docker.errors.NotFound:
                continue  # gone with another one removed before it
            except docker.errors.APIError as e:
                print(f"\nImage {image_id} (its name taken by a rebuild) left: {e}")
                continue
            removed.append(image_id)
    return removed


def server_groups() -> set[Path]:
    """The group of the tests' user containers (server_cgroup's default) in each cgroup
    hierarchy of this host: the engine makes it, in every controller, and leaves it."""
    root, name = Path("/sys/fs/cgroup"), Settings().server_cgroup
    return {group for group in [*root.glob(name), *root.glob(f"*/{name}")] if group.is_dir()}


def remove_groups(groups: set[Path]) -> None:
    """Remove these (empty) groups; one still in use is left, and said."""
    for group in sorted(groups):
        try:
            group.rmdir()
        except FileNotFoundError:
            continue
        except OSError as e:
            print(f"\nCPU group {group} left: {e.strerror}")


@pytest.fixture(scope="session")
def docker_images(docker_client: docker.DockerClient) -> str:
    """The built-in server's single-user image, built (with its base) by images/build."""
    result = subprocess.run(
        [str(REPO / "images" / "build"), "builtin"],
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
    )
    if result.returncode != 0:
        pytest.fail(f"images/build failed:\n{result.stdout}\n{result.stderr}", pytrace=False)
    return BUILTIN_IMAGE


# The per-test timeout (setup.cfg's 300 s) counts the session's fixtures in the first
# test that asks for them: there, with no stand-in base images cached yet
# (images/standins/make: debootstrap of each base) and nothing built, making the images
# the deployment's tests need took longer than 300 s (seen in a fresh CI run). Those
# modules' tests get this long; each step has its own timeout inside.
MAKES_IMAGES = pytest.mark.timeout(1800)

# Whether this test session made the engine a swarm (then its node is the tests' own).
_SWARM_MADE = [False]


@pytest.fixture(scope="session")
def docker_swarm(docker_client: docker.DockerClient) -> Iterator[bool]:
    """A swarm manager: the engine, made a single-node swarm for the session if need be
    (then left at the end, with the docker_gwbridge network the swarm brought). True if
    the session made it: only then may a test change its node (e.g. drain it)."""
    swarm = docker_client.info()["Swarm"]
    if swarm["LocalNodeState"] == "active":
        if not swarm.get("ControlAvailable"):
            _no_engine("the Docker engine is a swarm worker, not a manager")
        # Each module that imports this fixture has its own copy: one of them made it.
        yield _SWARM_MADE[0]
        return
    had_gwbridge = bool(docker_client.networks.list(names=[GWBRIDGE]))
    docker_client.swarm.init(advertise_addr="127.0.0.1")
    _SWARM_MADE[0] = True
    yield True
    _SWARM_MADE[0] = False
    docker_client.swarm.leave(force=True)
    if not had_gwbridge:
        for network in docker_client.networks.list(names=[GWBRIDGE]):
            network.remove()


def remove_labelled(client: docker.DockerClient, hub: str) -> None:
    """Remove every service, container, volume and network a hub (its docker_prefix) made."""
    selector = {"label": f"{LABEL_HUB}={hub}"}
    if client.info()["Swarm"].get("ControlAvailable"):
        for service in client.services.list(filters=selector):
            service.remove()
    for container in client.containers.list(all=True, filters=selector):
        _remove_container(client, container)
    for volume in client.volumes.list(filters=selector):
        volume.remove(force=True)
    for network in client.networks.list(filters=selector):
        network.remove()


def _remove_container(client: docker.DockerClient, container: Container) -> None:
    """Remove container, or wait until the engine has (a removed service's task's)."""
    try:
        container.remove(force=True)
    except docker.errors.NotFound:
        return
    except docker.errors.APIError as e:
        if e.status_code != 409:
            raise
        wait_for(lambda: not client.containers.list(all=True, filters={"id": container.id}), 30)


def spawn(hub: Hub, name: str) -> None:
    """Create user name and start their server unless it runs; wait until it is ready."""
    hub.api("POST", f"/users/{name}")
    if hub.api("GET", f"/users/{name}").json()["server"]:
        return
    response = hub.api("POST", f"/users/{name}/server")
    assert response.status_code in (201, 202), response.text
    wait_for(lambda: hub.api("GET", f"/users/{name}").json()["servers"][""]["ready"], 60)


def stop(hub: Hub, name: str) -> None:
    """Stop user name's server and wait until it is gone."""
    assert hub.api("DELETE", f"/users/{name}/server").status_code in (202, 204)
    wait_for(lambda: not hub.api("GET", f"/users/{name}").json()["servers"], 60)


def run_in(container: Container, command: str) -> str:
    """The output of a shell command run in a container (which must succeed)."""
    code, output = container.exec_run(["sh", "-c", command])
    assert code == 0, output
    return output.decode()


# Exits 0 if a single-user server answers at http://<argv[1]>:<argv[2]><argv[3]>. Only a
# server's own header counts: a host's outbound route may end at a proxy that accepts
# every connection (as on the machines the suite runs on).
_REACHES = """
import http.client, sys
connection = http.client.HTTPConnection(sys.argv[1], int(sys.argv[2]), timeout=3)
try:
    connection.request("GET", sys.argv[3])
    response = connection.getresponse()
except OSError as e:
    sys.exit(f"unreachable: {e}")
sys.exit(0 if response.getheader("X-JupyterHub-Version") else "not a server")
"""


def reaches_server(container: Container, ip: str, port: int, path: str) -> bool:
    """Whether code in container gets an answer from the single-user server at ip:port."""
    code, _ = container.exec_run(["python3", "-c", _REACHES, ip, str(port), path])
    return code == 0


# Prints "<host> open" or "<host> closed" for each <host>:<port> argument.
_PORTS = """
import socket, sys
for target in sys.argv[1:]:
    host, port = target.split(':')
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
        print(host, 'open')
    except OSError:
        print(host, 'closed')
"""


def probe_ports(container: Container, *targets: str) -> list[str]:
    """From inside container, whether each <host>:<port> accepts a connection: the words
    "<host> open" or "<host> closed", in order."""
    code, output = container.exec_run(["python3", "-c", _PORTS, *targets])
    assert code == 0, output
    return output.decode().split()
