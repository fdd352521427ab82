"""The docker-compose deployment end to end: build, up, an admin, a login, JupyterLab
in the user's container, down.

Runs the repository's docker-compose.yml as it is, under a project name of its
own (from which the hub names its containers and volumes, on the project's own
networks), a single-user image name of its own (FLASKHUB_DOCKER_IMAGE) and on a
free port (FLASKHUB_PORT, which the per-user origins follow), against the engine
of docker_engine.py; a second project beside it on another port. The images are made once per
session, in the README's order: images/standins/make for any base image that is
missing, then `docker-compose build`, whose layer cache makes a rebuild quick.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import docker
import pytest
import requests
from playwright.sync_api import expect, sync_playwright

from app.spawners.docker import LABEL_HUB
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.helpers import browser_session, free_port, wait_for, xsrf_token
from tests.integration.docker_engine import (  # noqa: F401 (fixtures)
    BUILD_TIMEOUT,
    MAKES_IMAGES,
    REPO,
    docker_client,
    probe_ports,
    remove_labelled,
)

pytestmark = [pytest.mark.integration, pytest.mark.docker, MAKES_IMAGES]

COMPOSE = shutil.which("docker-compose")
PROJECT = f"fhcompose{secrets.token_hex(3)}"
# A second stack on the same engine, with nothing but its project name and port its own.
OTHER = f"{PROJECT}b"
FORMER_HOME = f"{OTHER}-former-home"
PASSWORD = "correct horse battery"
HOME = "/home/jovyan"
IMAGE = "flaskhub/singleuser:compose-test"


@dataclass
class Stack:
    """A running compose project: its name, public URL and the environment compose needs."""

    project: str
    url: str
    env: dict[str, str]

    def compose(
        self, *args: str, input: str | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        assert COMPOSE is not None
        return subprocess.run(
            [COMPOSE, "-p", self.project, *args],
            cwd=REPO,
            env=self.env,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def flaskhub(self, *args: str, input: str | None = None) -> str:
        """`docker-compose exec hub flaskhub ARGS`: its output."""
        result = self.compose("exec", "-T", "hub", "flaskhub", *args, input=input)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    def token(self, name: str) -> str:
        return self.flaskhub("token", name).strip().splitlines()[-1]


def compose_env() -> dict[str, str]:
    """Our environment without FlaskHub's, plus what the file asks for; a free port.

    Nothing else: the hub's names come from the project's, the per-user origins from the port.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLASKHUB_", "CONFIGPROXY"))}
    env.update(
        CONFIGPROXY_AUTH_TOKEN=secrets.token_hex(32),
        FLASKHUB_PORT=str(free_port()),
        # The single-user image under a name of the tests' own: a `docker-compose build`
        # of another checkout on the same engine retags the default name.
        FLASKHUB_DOCKER_IMAGE=IMAGE,
    )
    return env


def run(*command: str, env: dict[str, str], timeout: float = BUILD_TIMEOUT) -> str:
    """Run a command in the repository; its output (stdout), or the test fails."""
    result = subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )
    if result.returncode != 0:
        pytest.fail(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}", False)
    return result.stdout


@pytest.fixture(scope="session")
def compose_images(docker_client: docker.DockerClient) -> None:  # noqa: F811
    """Every image docker-compose.yml names, made or built once per session."""
    if COMPOSE is None:
        pytest.skip("docker-compose is not installed")
    env = compose_env()
    # In the README's order: the base images, then the build.
    made = run(str(REPO / "images" / "standins" / "make"), env=env)
    assert "==> Base images ready: python:3.11-slim postgres:15 node:20-slim" in made
    run(COMPOSE, "build", env=env)


def project_leftovers(client: docker.DockerClient, project: str = PROJECT) -> list[str]:
    """Containers, networks and volumes of the project or labelled by its hub."""
    found = []
    for selector in (f"com.docker.compose.project={project}", f"{LABEL_HUB}={project}"):
        filters = {"label": selector}
        found += [f"container {c.name}" for c in client.containers.list(all=True, filters=filters)]
        found += [f"network {n.name}" for n in client.networks.list(filters=filters)]
        found += [f"volume {v.name}" for v in client.volumes.list(filters=filters)]
    return sorted(set(found))


def service_health(client: docker.DockerClient, project: str, service: str) -> str:
    labels = [f"com.docker.compose.project={project}", f"com.docker.compose.service={service}"]
    (container,) = client.containers.list(filters={"label": labels})
    return str(container.attrs["State"].get("Health", {}).get("Status", ""))


def run_stack(client: docker.DockerClient, project: str) -> Iterator[Stack]:
    """`up -d` of the project until its hub answers through the proxy; `down -v` after."""
    env = compose_env()
    stack = Stack(project=project, url=f"http://localhost:{env['FLASKHUB_PORT']}", env=env)
    try:
        result = stack.compose("up", "-d")
        assert result.returncode == 0, result.stderr
        wait_for(lambda: service_health(client, project, "hub") == "healthy", 120, 0.5)
        wait_for(lambda: answers(f"{stack.url}/hub/health"), 60, 0.2)
        yield stack
    finally:
        stack.compose("down", "-v", "--remove-orphans")
        remove_labelled(client, project)
        # What a `down` that failed midway left of compose's own.
        selector = {"label": f"com.docker.compose.project={project}"}
        for volume in client.volumes.list(filters=selector):
            volume.remove(force=True)


@pytest.fixture(scope="module")
def stack(
    compose_images: None,
    docker_client: docker.DockerClient,  # noqa: F811
) -> Iterator[Stack]:
    yield from run_stack(docker_client, PROJECT)


@pytest.fixture(scope="module")
def other(
    compose_images: None,
    docker_client: docker.DockerClient,  # noqa: F811
) -> Iterator[Stack]:
    """A second stack beside `stack`: another project name and port, nothing else; on
    an engine with a user's home as earlier versions named it in every project."""
    former = docker_client.volumes.create(FORMER_HOME, labels={LABEL_HUB: "flaskhub"})
    try:
        yield from run_stack(docker_client, OTHER)
    finally:
        with contextlib.suppress(docker.errors.NotFound):
            former.remove(force=True)


def answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=5).status_code == 200
    except requests.RequestException:
        return False


def login(stack: Stack, name: str, password: str) -> requests.Session:
    """A browser-like session logged in through the login form."""
    session = browser_session()
    session.headers["Accept"] = "text/html"
    page = session.get(f"{stack.url}/hub/login", timeout=30)
    response = session.post(
        f"{stack.url}/hub/login",
        data={"username": name, "password": password, "_xsrf": xsrf_token(page.text)},
        allow_redirects=False,
        timeout=30,
    )
    assert response.status_code == 302, response.text
    return session


def start_my_server(stack: Stack, session: requests.Session) -> requests.Response:
    """/hub/spawn as a browser follows it, to the server; through the spawn-pending page
    where the spawn outlasts slow_spawn_timeout (10 s: a loaded machine), which sends
    the browser on once the server is ready."""
    page = session.get(f"{stack.url}/hub/spawn", timeout=120)
    pending = page.url
    if "/hub/spawn-pending/" not in pending:
        return page

    def went_on() -> bool:
        nonlocal page
        page = session.get(pending, timeout=60)
        return page.url != pending

    wait_for(went_on, 120, 1)
    return page


def api(stack: Stack, method: str, path: str, token: str) -> requests.Response:
    return requests.request(
        method,
        f"{stack.url}/hub/api{path}",
        headers={"Authorization": f"token {token}"},
        timeout=60,
    )


def test_only_the_stack_s_services_run_and_the_proxy_is_not_in_the_hub_s_namespace(
    stack: Stack,
    docker_client: docker.DockerClient,  # noqa: F811
) -> None:
    running = docker_client.containers.list(
        filters={"label": f"com.docker.compose.project={PROJECT}"}
    )
    services = sorted(c.labels["com.docker.compose.service"] for c in running)
    assert services == ["db", "hub", "proxy"]  # the single-user image is only built
    # The hub made no network yet (each server gets its own); the users' way out is the
    # project's own, compose's, with inter-container traffic off.
    assert docker_client.networks.list(filters={"label": f"{LABEL_HUB}={PROJECT}"}) == []
    users = docker_client.networks.get(f"{PROJECT}_users")
    assert users.attrs["Options"]["com.docker.network.bridge.enable_icc"] == "false"


def passed_health_checks(container: Any) -> int:
    """How many of the engine's last (up to 5) health checks of container passed."""
    container.reload()
    return sum(r["ExitCode"] == 0 for r in container.attrs["State"]["Health"]["Log"])


def test_the_engine_s_health_checks_of_the_hub_write_no_log_lines(
    stack: Stack,
    docker_client: docker.DockerClient,  # noqa: F811
) -> None:
    # docker-compose.yml has the engine ask /hub/health every 2 s for as long as the stack
    # runs: a passing check is logged at DEBUG only, so the hub's log stays readable.
    labels = [f"com.docker.compose.project={PROJECT}", "com.docker.compose.service=hub"]
    (hub,) = docker_client.containers.list(filters={"label": labels})
    wait_for(lambda: passed_health_checks(hub) >= 3, 30, 0.5)
    logs = stack.compose("logs", "--no-color", "hub").stdout
    assert not re.search(r'"GET /hub/health HTTP/1\.[01]" 200', logs), logs[-3000:]


def test_admin_added_with_the_cli_logs_in_and_works_in_a_container(
    stack: Stack,
    docker_client: docker.DockerClient,  # noqa: F811
) -> None:
    out = stack.flaskhub("user", "add", "admin", "--admin", "--password-stdin", input=PASSWORD)
    assert "admin" in out
    session = login(stack, "admin", PASSWORD)
    # Start My Server, then the server's OAuth round trip with the hub (at hub:8081).
    page = start_my_server(stack, session)
    assert page.status_code == 200, page.text
    # JupyterLab, on admin's own origin, its login there through the hub's OAuth.
    assert page.url == user_url(stack, "admin") + "lab"
    assert lab_config(page.text)["appName"] == "JupyterLab"
    # The Jupyter Server API answers the same cookies: a real server, not a page.
    contents = session.get(user_url(stack, "admin") + "api/contents", timeout=30)
    assert contents.status_code == 200 and contents.json()["type"] == "directory"
    container = docker_client.containers.get(f"{PROJECT}-admin")
    assert container.labels[LABEL_HUB] == PROJECT
    # Alone on an internal network of its own with the hub and the proxy (docker_attach),
    # and on the users' way out.
    networks = container.attrs["NetworkSettings"]["Networks"]
    assert sorted(networks) == [f"{PROJECT}-admin-net", f"{PROJECT}_users"]
    network = docker_client.networks.get(f"{PROJECT}-admin-net")
    assert network.attrs["Internal"] is True
    members = {c["Name"] for c in network.attrs["Containers"].values()}
    assert members == {f"{PROJECT}-admin", f"{PROJECT}_hub_1", f"{PROJECT}_proxy_1"}
    # jupyterhub-singleuser in an image with nothing of FlaskHub's. `ps -ww`: without it the
    # engine's ps cuts the command line at the width of dockerd's terminal (CI's has none).
    assert "jupyterhub-singleuser" in str(container.top(ps_args="-eww -o pid,args")["Processes"])
    assert container.exec_run(["sh", "-c", "command -v flaskhub"]).exit_code != 0


def lab_config(html: str) -> dict[str, Any]:
    """The page's jupyter-config-data, which JupyterLab's pages carry."""
    match = re.search(
        r'<script id="jupyter-config-data" type="application/json">(.*?)</script>', html, re.S
    )
    assert match, html[:500]
    return dict(json.loads(match.group(1)))


def test_jupyterlab_opens_in_chromium_on_the_user_s_origin(stack: Stack) -> None:
    """What a person sees: the hub's login, then JupyterLab's workspace on their origin."""
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context().new_page()
            page.goto(f"{stack.url}/hub/login?next=/hub/spawn", timeout=60_000)
            page.get_by_label("Username").fill("admin")
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url(user_url(stack, "admin") + "lab**", timeout=60_000)
            expect(page.locator("#jp-main-dock-panel")).to_be_visible(timeout=60_000)
            expect(page).to_have_title("JupyterLab", timeout=30_000)
        finally:
            browser.close()


def test_owner_reaches_the_server_through_the_proxy_others_do_not(stack: Stack) -> None:
    admin, alice, bob = (stack.token(name) for name in ("admin", "alice", "bob"))
    response = api(stack, "POST", "/users/alice/server", admin)
    assert response.status_code in (201, 202), response.text
    wait_for(lambda: api(stack, "GET", "/users/alice", admin).json()["servers"][""]["ready"], 120)
    for token, status in ((alice, 200), (bob, 403)):
        response = browser_session().get(
            user_url(stack, "alice"), headers={"Authorization": f"token {token}"}, timeout=30
        )
        assert response.status_code == status, response.text


def user_url(stack: Stack, name: str) -> str:
    """A user's server on their own origin: http://<name>.localhost:<port>/user/<name>/."""
    return f"{stack.url.replace('://', f'://{name}.')}/user/{name}/"


def test_a_user_container_reaches_the_hub_but_not_the_database_the_proxy_api_or_others(
    stack: Stack,
    docker_client: docker.DockerClient,  # noqa: F811
) -> None:
    container = docker_client.containers.get(f"{PROJECT}-admin")
    # alice's server (started by the test before): by name and at both its addresses.
    alice = docker_client.containers.get(f"{PROJECT}-alice")
    alice_ips = [n["IPAddress"] for n in alice.attrs["NetworkSettings"]["Networks"].values()]
    targets = ["hub:8081", "proxy:8000", "db:5432", "proxy-api:8001"]
    targets += [f"{PROJECT}-alice:8888", *(f"{ip}:8888" for ip in alice_ips)]
    assert probe_ports(container, *targets) == [
        *("hub", "open", "proxy", "open"),
        *("db", "closed", "proxy-api", "closed"),
        *(f"{PROJECT}-alice", "closed"),
        *(word for ip in alice_ips for word in (ip, "closed")),
    ]
    # The proxy reaches both (the owners' 200s above), and the hub's API answers admin's.
    fetch = (
        "import os,urllib.request as u; print(u.urlopen(os.environ['JUPYTERHUB_API_URL']).status)"
    )
    code, output = container.exec_run(["python3", "-c", fetch])
    assert (code, output.decode().strip()) == (0, "200"), output


def test_a_re_created_proxy_is_joined_to_the_servers_networks_again(
    stack: Stack,
    docker_client: docker.DockerClient,  # noqa: F811
) -> None:
    # `up` after a change to the proxy service makes a new container, on none of the
    # servers' own networks: the hub's next route check joins it to them.
    result = stack.compose("up", "-d", "--force-recreate", "--no-deps", "proxy")
    assert result.returncode == 0, result.stderr
    alice = stack.token("alice")

    def alice_served() -> bool:
        try:
            response = browser_session().get(
                user_url(stack, "alice"), headers={"Authorization": f"token {alice}"}, timeout=5
            )
        except requests.RequestException:
            return False
        return response.status_code == 200

    wait_for(alice_served, 90, 0.5)
    network = docker_client.networks.get(f"{PROJECT}-alice-net")
    members = {c["Name"] for c in network.attrs["Containers"].values()}
    assert f"{PROJECT}_proxy_1" in members


def test_a_swarm_hub_in_a_container_in_docker_gwbridge_mode_is_refused_at_start(
    stack: Stack,
) -> None:
    # A second `flaskhub run` in the hub's container, as the swarm spawner with the
    # default address mode, which cannot work there: refused before it serves.
    result = stack.compose(
        *("exec", "-T", "-e", "FLASKHUB_SPAWNER=swarm", "-e", "FLASKHUB_HUB_PORT=8089"),
        *("-e", "FLASKHUB_HUB_SOCKET=", "hub", "flaskhub", "run"),
    )
    assert result.returncode != 0
    assert 'swarm_address = "docker_gwbridge" needs the hub and CHP' in result.stderr
    assert f"the hub runs in container {PROJECT}_hub_1" in result.stderr
    # Refused before it touched anything: the running hub's servers are as they were.
    admin = stack.token("admin")
    for name in ("admin", "alice"):
        assert api(stack, "GET", f"/users/{name}", admin).json()["servers"][""]["ready"]


def test_a_second_stack_beside_the_first_has_names_and_networks_of_its_own(
    stack: Stack,
    other: Stack,
    docker_client: docker.DockerClient,  # noqa: F811
) -> None:
    """`docker-compose -p` and FLASKHUB_PORT, nothing else: two stacks on one engine."""
    sessions = {}
    for each in (stack, other):
        each.flaskhub("user", "add", "erin", "--password-stdin", input=PASSWORD)
        sessions[each.project] = login(each, "erin", PASSWORD)
        page = start_my_server(each, sessions[each.project])
        assert page.status_code == 200, page.text[:500]
        assert page.url == user_url(each, "erin") + "lab"
    for each in (stack, other):
        project = each.project
        container = docker_client.containers.get(f"{project}-erin")
        assert container.labels[LABEL_HUB] == project
        # On its own project's networks only: its server's own, and its project's way out.
        networks = container.attrs["NetworkSettings"]["Networks"]
        assert sorted(networks) == [f"{project}-erin-net", f"{project}_users"]
        network = docker_client.networks.get(f"{project}-erin-net")
        members = {c["Name"] for c in network.attrs["Containers"].values()}
        assert members == {f"{project}-erin", f"{project}_hub_1", f"{project}_proxy_1"}
    # The hub whose names changed says where its users' files of before may be.
    logs = other.compose("logs", "--no-color", "hub").stdout
    assert "labelled org.flaskhub.hub=flaskhub" in logs
    assert "set FLASKHUB_DOCKER_PREFIX=flaskhub" in logs
    first = project_leftovers(docker_client)

    result = other.compose("down", "-v", timeout=180)
    assert result.returncode == 0, result.stderr
    # Of the second stack only its users' homes are left (compose does not know them);
    # the first stack's things are all there, and its server still serves.
    left = project_leftovers(docker_client, OTHER)
    assert len(left) == 1 and left[0].startswith(f"volume {OTHER}-home-"), left
    assert project_leftovers(docker_client) == first
    contents = sessions[PROJECT].get(user_url(stack, "erin") + "api/contents", timeout=30)
    assert contents.status_code == 200, contents.text[:500]


def test_down_keeps_volumes_and_down_v_with_the_readme_cleanup_leaves_nothing(
    stack: Stack,
    other: Stack,
    docker_client: docker.DockerClient,  # noqa: F811
) -> None:
    """Also of the second stack, whose users' homes the first's `down -v` and cleanup keep."""
    others = project_leftovers(docker_client, OTHER)
    container = docker_client.containers.get(f"{PROJECT}-admin")
    assert container.exec_run(["sh", "-c", f"echo kept > {HOME}/notes.txt"]).exit_code == 0
    result = stack.compose("down", timeout=180)
    assert result.returncode == 0, result.stderr
    # The hub stopped its containers on the way out and removed their networks.
    left = project_leftovers(docker_client)
    assert left and all(item.startswith("volume ") for item in left), left
    assert f"volume {PROJECT}_db-data" in left
    homes = docker_client.volumes.list(filters={"label": f"{LABEL_HUB}={PROJECT}"})
    assert len(homes) == 3  # admin's, alice's and erin's

    result = stack.compose("down", "-v", timeout=180)
    assert result.returncode == 0, result.stderr
    left = project_leftovers(docker_client)
    assert left == sorted(f"volume {v.name}" for v in homes)  # -v: compose's volumes only
    for project in (PROJECT, OTHER):
        cleanup = readme_cleanup().replace(
            "org.flaskhub.hub=flaskhub", f"org.flaskhub.hub={project}"
        )
        subprocess.run(["sh", "-c", cleanup], check=True, capture_output=True, timeout=60)
        assert project_leftovers(docker_client) == []
        # The first stack's cleanup leaves the second's users' homes.
        assert project_leftovers(docker_client, OTHER) == ([] if project == OTHER else others)


def readme_cleanup() -> str:
    """The README's one line that removes the users' volumes after `down -v`."""
    text = (REPO / "README.md").read_text()
    match = re.search(r"^(docker volume ls .*org\.flaskhub\.hub=flaskhub .*)$", text, re.M)
    assert match, "the README gives the command that removes the users' volumes"
    return match.group(1)
