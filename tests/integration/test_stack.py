"""docker/stack.yml on a real (single-node) swarm: deploy, an admin, a server, isolation, rm.

Deployed as the file's top says, under a docker_prefix of the module's own (its secrets
and services) and on a free port, with the images the compose tests build, pushed by
docker/push to the stack's registry (on a free port too). On one node the global proxy
service is one task: replaced, it comes back at a new address, which the hubs find by
DNS and fill. Several nodes (node loss, a CHP
on each node) need docker-in-docker nodes: not here yet.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import docker
import pytest
import requests

from app.spawners.docker import LABEL_HUB
from tests.helpers import free_ports, wait_for
from tests.integration.docker_engine import (  # noqa: F401 (fixtures)
    MAKES_IMAGES,
    REPO,
    docker_client,
    docker_swarm,
    probe_ports,
    remove_labelled,
)
from tests.integration.test_compose_stack import IMAGE, compose_images  # noqa: F401

pytestmark = [pytest.mark.integration, pytest.mark.docker, MAKES_IMAGES]

PREFIX = f"fhstack{secrets.token_hex(3)}"
DOCKER = shutil.which("docker")
PASSWORD = "correct horse battery"
# Prints the status of the hub's API at a server's own JUPYTERHUB_API_URL.
API_STATUS = (
    "import os, urllib.request as u; print(u.urlopen(os.environ['JUPYTERHUB_API_URL']).code)"
)


@dataclass
class Deployed:
    url: str
    client: docker.DockerClient

    def hub_container(self) -> str:
        selector = {"label": f"com.docker.swarm.service.name={PREFIX}_hub", "status": "running"}
        return str(self.client.containers.list(filters=selector)[0].id)

    def flaskhub(self, *args: str, input: str | None = None) -> str:
        """`docker exec <a hub task> flaskhub ARGS`: its output."""
        assert DOCKER is not None
        result = subprocess.run(
            [DOCKER, "exec", "-i", self.hub_container(), "flaskhub", *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    def api(self, method: str, path: str, token: str) -> requests.Response:
        return requests.request(
            method,
            f"{self.url}/hub/api{path}",
            headers={"Authorization": f"token {token}"},
            timeout=60,
        )


def answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=5).status_code == 200
    except requests.RequestException:
        return False


def remove_stack(client: docker.DockerClient, env: dict[str, str]) -> None:
    """docker stack rm and what the hub made (user services, homes), each waited for until
    gone; then the secrets, which nothing uses by then."""
    assert DOCKER is not None
    made = {"label": f"{LABEL_HUB}={PREFIX}"}
    for service in client.services.list(filters=made):
        service.remove()
    subprocess.run([DOCKER, "stack", "rm", PREFIX], env=env, capture_output=True, timeout=60)
    stack = {"label": f"com.docker.stack.namespace={PREFIX}"}
    for selector in (stack, made):
        wait_for(lambda s=selector: not client.services.list(filters=s), 60, 0.5)
        wait_for(lambda s=selector: not client.containers.list(all=True, filters=s), 60, 0.5)
    remove_labelled(client, PREFIX)
    for name in (f"{PREFIX}_proxy_token", f"{PREFIX}_cookie_secret"):
        for secret in client.secrets.list(filters={"name": name}):
            secret.remove()
    for volume in client.volumes.list(filters=stack):
        volume.remove(force=True)


@pytest.fixture(scope="module")
def stack(
    docker_swarm: bool,  # noqa: F811
    compose_images: None,  # noqa: F811
    docker_client: docker.DockerClient,  # noqa: F811
) -> Iterator[Deployed]:
    if DOCKER is None:
        pytest.skip("the docker CLI is not installed")
    port, registry_port = (str(p) for p in free_ports(2))
    registry = f"127.0.0.1:{registry_port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLASKHUB_")}
    env.update(
        FLASKHUB_DB_PASSWORD=secrets.token_hex(16),
        FLASKHUB_PORT=port,
        FLASKHUB_DOCKER_PREFIX=PREFIX,
        FLASKHUB_DOCKER_IMAGE=IMAGE,
        # One node: the registry at its loopback address, where plain HTTP is allowed.
        FLASKHUB_REGISTRY=registry,
        FLASKHUB_REGISTRY_PORT=registry_port,
    )
    make = [str(REPO / "images" / "standins" / "make"), "registry:2"]
    subprocess.run(make, check=True, capture_output=True, timeout=900)
    for name in ("proxy_token", "cookie_secret"):
        docker_client.secrets.create(name=f"{PREFIX}_{name}", data=secrets.token_hex(32))
    try:
        result = subprocess.run(
            [DOCKER, "stack", "deploy", "-c", "docker/stack.yml", PREFIX],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        # The README's order: the stack, then the images pushed to its registry.
        push = [str(REPO / "docker" / "push"), "--no-build", registry]
        pushed = subprocess.run(push, env=env, capture_output=True, text=True, timeout=600)
        assert pushed.returncode == 0, pushed.stdout + pushed.stderr
        url = f"http://127.0.0.1:{port}"
        # Hub tasks exit until the database answers; the swarm starts them again.
        wait_for(lambda: answers(f"{url}/hub/health"), 180, 0.5)
        yield Deployed(url=url, client=docker_client)
    finally:
        remove_stack(docker_client, env)
        # docker/push's tags (the images themselves are the compose tests').
        for image in docker_client.images.list():
            for tag in image.tags:
                if tag.startswith(f"{registry}/"):
                    docker_client.images.remove(tag)


def test_the_stack_runs_two_hubs_on_managers_a_database_and_chp(stack: Deployed) -> None:
    services = stack.client.services.list(filters={"label": f"com.docker.stack.namespace={PREFIX}"})
    modes = {s.name: s.attrs["Spec"]["Mode"] for s in services}
    assert modes == {
        f"{PREFIX}_db": {"Replicated": {"Replicas": 1}},
        f"{PREFIX}_hub": {"Replicated": {"Replicas": 2}},
        f"{PREFIX}_proxy": {"Global": {}},  # a CHP on every node
        f"{PREFIX}_registry": {"Replicated": {"Replicas": 1}},  # the images the nodes pull
    }
    hub = next(s for s in services if s.name == f"{PREFIX}_hub")
    spec = hub.attrs["Spec"]
    assert spec["UpdateConfig"]["Order"] == "start-first"
    assert "node.role == manager" in spec["TaskTemplate"]["Placement"]["Constraints"]
    # Secrets from Docker secrets, never in the environment.
    env = spec["TaskTemplate"]["ContainerSpec"]["Env"]
    assert "FLASKHUB_COOKIE_SECRET_FILE=/run/secrets/flaskhub_cookie_secret" in env
    assert not [e for e in env if e.startswith(("FLASKHUB_COOKIE_SECRET=", "CONFIGPROXY_AUTH"))]


def test_an_admin_starts_jupyterlab_as_a_service_reached_through_chp(stack: Deployed) -> None:
    out = stack.flaskhub("user", "add", "admin", "--admin", "--password-stdin", input=PASSWORD)
    assert "admin" in out
    admin = stack.flaskhub("token", "admin").strip().splitlines()[-1]
    response = stack.api("POST", "/users/admin/server", admin)
    assert response.status_code in (201, 202), response.text
    wait_for(lambda: stack.api("GET", "/users/admin", admin).json()["servers"][""]["ready"], 180)
    service = stack.client.services.get(f"{PREFIX}-admin")
    assert service.attrs["Spec"]["Labels"][LABEL_HUB] == PREFIX
    # JupyterLab's server answers its owner through CHP, and nobody else.
    url = f"{stack.url}/user/admin/api/status"
    status = requests.get(url, headers={"Authorization": f"token {admin}"}, timeout=30)
    assert status.status_code == 200 and "started" in status.json()
    stack.api("POST", "/users/bob", admin)
    bob = stack.flaskhub("token", "bob").strip().splitlines()[-1]
    other = requests.get(url, headers={"Authorization": f"token {bob}"}, timeout=30)
    assert other.status_code == 403


def test_a_users_task_reaches_the_hub_through_chp_only_and_not_the_database_or_the_proxy_api(
    stack: Deployed,
) -> None:
    selector = {"label": f"com.docker.swarm.service.name={PREFIX}-admin", "status": "running"}
    (task,) = stack.client.containers.list(filters=selector)
    # On no network of the stack's: the hub's own port, the database and CHP's API
    # (on `backend` alone) are out of reach; the hub is reached through CHP on the node.
    found = probe_ports(task, "hub:8081", "db:5432", "proxy-api:8001", "proxy:8001")
    assert found == ["hub", "closed", "db", "closed", "proxy-api", "closed", "proxy", "closed"]
    env = dict(e.split("=", 1) for e in task.attrs["Config"]["Env"])
    port = stack.url.rsplit(":", 1)[1]
    assert env["JUPYTERHUB_API_URL"] == f"http://host.docker.internal:{port}/hub/api"
    code, output = task.exec_run(["python3", "-c", API_STATUS])
    assert (code, output.decode().strip()) == (0, "200"), output


def test_a_replaced_proxy_task_at_a_new_address_gets_the_routes_back(stack: Deployed) -> None:
    admin = stack.flaskhub("token", "admin").strip().splitlines()[-1]
    url = f"{stack.url}/user/admin/api/status"
    proxy = stack.client.services.get(f"{PREFIX}_proxy")
    before = _task_addresses(proxy)
    proxy.force_update()  # a new task (a new container, a new address): no routes
    wait_for(lambda: _task_addresses(proxy) not in (before, set()), 120, 0.5)

    def routed() -> bool:
        try:
            response = requests.get(url, headers={"Authorization": f"token {admin}"}, timeout=5)
        except requests.RequestException:
            return False
        return response.status_code == 200

    # Found by DNS (looked up every 5 s) and filled at the next tick.
    wait_for(routed, 30, 0.5)


def _task_addresses(service: docker.models.services.Service) -> set[str]:
    """The addresses ("10.0.1.5/24") of the service's running tasks on any network."""
    return {
        address
        for task in service.tasks(filters={"desired-state": "running"})
        if task["Status"]["State"] == "running"
        for attachment in task.get("NetworksAttachments", [])
        for address in attachment.get("Addresses", [])
    }
