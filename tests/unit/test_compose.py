"""docker-compose.yml stays valid and consistent with the settings table and the images.

No Docker engine is needed; Debian's docker-compose validates the file.
tests/integration/test_compose_stack.py runs it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import quote

import pytest
import yaml

from app.config import BY_NAME, ENV_PREFIX, Settings, load
from app.version import __version__
from tests.helpers import REPO

COMPOSE = shutil.which("docker-compose")

pytestmark = [
    pytest.mark.process,
    pytest.mark.skipif(
        COMPOSE is None and not os.environ.get("CI"), reason="docker-compose not installed"
    ),
]


def _config(**env: str) -> subprocess.CompletedProcess[str]:
    assert COMPOSE is not None, "docker-compose is needed in CI (./test installs it)"
    full = {k: v for k, v in os.environ.items() if k != "CONFIGPROXY_AUTH_TOKEN"} | env
    return subprocess.run(
        [COMPOSE, "config"], cwd=REPO, env=full, capture_output=True, text=True, timeout=60
    )


def test_compose_file_is_valid() -> None:
    result = _config(CONFIGPROXY_AUTH_TOKEN="secret-for-test")
    assert result.returncode == 0, result.stderr
    for service in ("db:", "hub:", "proxy:", "singleuser:"):
        assert f"\n  {service}" in result.stdout


def test_compose_refuses_to_start_without_a_proxy_token() -> None:
    result = _config()
    assert result.returncode != 0
    assert "CONFIGPROXY_AUTH_TOKEN" in result.stderr


def test_compose_uses_only_known_settings() -> None:
    text = (REPO / "docker-compose.yml").read_text()
    keys = set(re.findall(rf"\b{ENV_PREFIX}([A-Z_]+):", text))
    assert keys, "the hub service is configured through FLASKHUB_* variables"
    unknown = {k for k in keys if k.lower() not in BY_NAME and k != "DB_PASSWORD"}
    assert not unknown


def test_compose_hub_uses_postgres_and_an_external_proxy() -> None:
    result = _config(CONFIGPROXY_AUTH_TOKEN="secret-for-test")
    assert "FLASKHUB_DB_URL: postgresql+psycopg://" in result.stdout
    assert re.search(r"FLASKHUB_PROXY_AUTO_START: ['\"]false", result.stdout)
    assert "pg_isready" in result.stdout


def _services(**env: str) -> dict[str, Any]:
    result = _config(CONFIGPROXY_AUTH_TOKEN="secret-for-test", **env)
    assert result.returncode == 0, result.stderr
    return dict(yaml.safe_load(result.stdout))


def test_compose_builds_the_default_single_user_image_and_starts_none() -> None:
    singleuser = _services()["services"]["singleuser"]
    assert singleuser["image"] == f"flaskhub/singleuser:{__version__}" == Settings().docker_image
    # Its own folder is the whole context: nothing of the hub's can be copied in.
    assert singleuser["build"]["context"] == str(REPO / "images" / "singleuser")
    assert "dockerfile" not in singleuser["build"]
    assert singleuser["scale"] == 0


def test_compose_hub_starts_the_image_the_singleuser_service_builds() -> None:
    services = _services(FLASKHUB_DOCKER_IMAGE="site/lab:2")["services"]
    assert services["singleuser"]["image"] == "site/lab:2"
    assert services["hub"]["environment"]["FLASKHUB_DOCKER_IMAGE"] == "site/lab:2"


def test_the_default_single_user_image_is_jupyterlab_and_nothing_of_the_hub_s() -> None:
    dockerfile = (REPO / "images/singleuser/Dockerfile").read_text()
    instructions = [line for line in dockerfile.splitlines() if line and line[0] != "#"]
    assert not [line for line in instructions if line.startswith(("COPY", "ADD"))]
    assert "'jupyterhub>=6.1,<7' 'jupyterlab>=4.6,<5'" in dockerfile
    assert instructions[-1] == 'CMD ["jupyterhub-singleuser"]'


def test_compose_hub_gives_each_server_a_network_only_it_and_the_proxy_join() -> None:
    config = _services(FLASKHUB_DOCKER_PREFIX="site")
    env = config["services"]["hub"]["environment"]
    assert env["FLASKHUB_SPAWNER"] == "docker"
    assert env["FLASKHUB_HUB_IP"] == "0.0.0.0" and env["FLASKHUB_HUB_CONNECT_IP"] == "hub"
    assert json.loads(env["FLASKHUB_DOCKER_ATTACH"]) == ["service:hub", "service:proxy"]
    assert "FLASKHUB_DOCKER_NETWORK" not in env
    assert env["FLASKHUB_DOCKER_PREFIX"] == "site"
    assert "/var/run/docker.sock:/var/run/docker.sock" in str(config["services"]["hub"]["volumes"])
    # The hub and the proxy share no network with user containers: `users` is the
    # containers' way out, made by compose as the hub would make it.
    assert set(config["networks"]) == {"backend", "users"}
    assert set(config["services"]["hub"]["networks"]) == {"backend"}
    assert set(config["services"]["proxy"]["networks"]) == {"backend"}
    users = config["networks"]["users"]
    assert users["driver_opts"] == {"com.docker.network.bridge.enable_icc": "false"}


def test_compose_names_nothing_for_the_whole_engine_and_origins_follow_the_port() -> None:
    # Two projects on one engine: compose names every network and volume after its
    # project, and the hub its own things after it too (docker_prefix unset).
    config = _services(FLASKHUB_PORT="8001")
    assert not [key for key, value in config["networks"].items() if "name" in (value or {})]
    assert not [key for key, value in config["volumes"].items() if "name" in (value or {})]
    assert config["services"]["proxy"]["ports"][0]["published"] == 8001
    env = config["services"]["hub"]["environment"]
    settings = load(environ={key: str(value) for key, value in env.items()})
    assert settings.docker_prefix == "" and settings.docker_network == ""
    assert settings.subdomain_host == "http://localhost:8001" == settings.public_url


def test_compose_keeps_the_database_and_the_proxy_api_off_the_users_network() -> None:
    services = _services()["services"]
    assert set(services["db"]["networks"]) == {"backend"}
    proxy = services["proxy"]
    assert proxy["networks"]["backend"]["aliases"] == ["proxy-api"]
    assert "--api-ip=proxy-api" in proxy["command"]
    assert "--error-target=http://hub:8081/hub/error" in proxy["command"]
    assert services["hub"]["environment"]["FLASKHUB_PROXY_API_URL"] == "http://proxy-api:8001"


def test_compose_proxy_reaches_the_hub_over_a_socket_only_they_share() -> None:
    # Only there does the hub believe X-Forwarded-For (issue 21, finding 5).
    services = _services()["services"]
    socket = services["hub"]["environment"]["FLASKHUB_HUB_SOCKET"]
    target = f"--default-target=http+unix://{quote(socket, safe='')}"
    assert target in services["proxy"]["command"]
    folder = str(PurePosixPath(socket).parent)
    mounting = [name for name, s in services.items() if folder in str(s.get("volumes", []))]
    assert sorted(mounting) == ["hub", "proxy"]


def test_every_image_not_built_here_has_a_stand_in() -> None:
    """Without a registry each base image must be made locally (images/standins/make)."""
    services = _services()["services"].values()
    named = {s["image"] for s in services if "build" not in s}
    dockerfiles = [
        REPO / "Dockerfile",
        REPO / "proxy/Dockerfile",
        REPO / "images/singleuser/Dockerfile",
        REPO / "images/builtin/Dockerfile",
    ]
    bases = {re.search(r"^FROM (\S+)", f.read_text(), re.M).group(1) for f in dockerfiles}  # type: ignore[union-attr]
    script = (REPO / "images/standins/make").read_text()
    known = set(re.search(r"^all=\((.*)\)$", script, re.M).group(1).split())  # type: ignore[union-attr]
    assert named | bases == known


def _commands(text: str) -> list[str]:
    """The commands of a shell listing: each line without its comment, blank lines dropped."""
    lines = (line.split("#")[0].strip() for line in text.splitlines())
    return [line for line in lines if line]


@pytest.mark.parametrize("where", ["README", "docker-compose.yml"])
def test_the_deployment_s_steps_make_the_base_images_before_the_build(where: str) -> None:
    """Where no registry answers, `docker-compose build` fails until the base images exist."""
    if where == "README":
        readme = (REPO / "README.md").read_text()
        section = readme.split("## Deploying with docker-compose", 1)[1]
        listing = section.split("```sh", 1)[1].split("```", 1)[0]
    else:
        top = (REPO / "docker-compose.yml").read_text().split("\nservices:", 1)[0]
        listing = "\n".join(line[4:] for line in top.splitlines() if line.startswith("#   "))
    steps = _commands(listing)
    make, build, up = (
        steps.index(c)
        for c in ("images/standins/make", "docker-compose build", "docker-compose up -d")
    )
    assert make < build < up, steps
