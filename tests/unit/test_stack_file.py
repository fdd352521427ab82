"""docker/stack.yml and docker/push agree: FlaskHub's images are named under the stack's
registry, with the defaults docker/push pushes. tests/integration/test_cluster.py runs them."""

from __future__ import annotations

from typing import Any

import yaml

from tests.helpers import REPO

REGISTRY = "${FLASKHUB_REGISTRY:-127.0.0.1:5000}/"
# variable: the default the stack file and docker/push both give it (without the version).
IMAGES = {
    "FLASKHUB_HUB_IMAGE": "flaskhub/hub",
    "FLASKHUB_PROXY_IMAGE": "flaskhub/proxy",
    "FLASKHUB_DOCKER_IMAGE": "flaskhub/singleuser",
}


def _services() -> dict[str, Any]:
    return dict(yaml.safe_load((REPO / "docker" / "stack.yml").read_text())["services"])


def _version() -> str:
    for line in (REPO / "setup.cfg").read_text().splitlines():
        if line.startswith("version = "):
            return line.split(" = ", 1)[1]
    raise AssertionError("setup.cfg names no version")


def test_flaskhubs_images_come_from_the_stacks_registry() -> None:
    services = _services()
    named = {
        "FLASKHUB_HUB_IMAGE": services["hub"]["image"],
        "FLASKHUB_PROXY_IMAGE": services["proxy"]["image"],
        "FLASKHUB_DOCKER_IMAGE": services["hub"]["environment"]["FLASKHUB_DOCKER_IMAGE"],
    }
    for variable, name in IMAGES.items():
        assert named[variable] == f"{REGISTRY}${{{variable}:-{name}:{_version()}}}"


def test_docker_push_pushes_the_images_the_stack_names() -> None:
    script = (REPO / "docker" / "push").read_text()
    for variable, name in IMAGES.items():
        assert f'"${{{variable}:-{name}:$version}}"' in script, variable


def test_the_registry_is_published_on_its_node_at_the_default_address() -> None:
    registry = _services()["registry"]
    (port,) = registry["ports"]
    assert port == {"target": 5000, "published": "${FLASKHUB_REGISTRY_PORT:-5000}", "mode": "host"}
    assert REGISTRY.endswith(":5000}/")  # the default address is that port on the loopback
    assert registry["deploy"]["placement"]["constraints"] == ["node.role == manager"]
