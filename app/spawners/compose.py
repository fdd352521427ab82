"""Where the hub runs in a compose project: what it takes from the project.

The hub finds its own container on the engine (its hostname is the container's
short id) and reads compose's labels there. From the project it takes the start
of its names (docker_prefix, unset: the project's name) and the servers' way out
(docker_network, unset: the project's network `users`, which compose names
<project>_users), so that two projects on one engine share no name; and the
containers that docker_attach's service:<name> entries name.
"""

from __future__ import annotations

import os
import socket

import docker
import requests
from docker.errors import APIError, DockerException, NotFound
from docker.models.containers import Container
from docker.models.networks import Network

from app.config import DOCKER_NAME_RE, ConfigError, Settings
from app.config.checks import check_swarm_prefix
from app.spawners.base import SpawnerError

# The labels compose gives each container (its project and its service) and network.
COMPOSE_PROJECT = "com.docker.compose.project"
COMPOSE_SERVICE = "com.docker.compose.service"
COMPOSE_NETWORK = "com.docker.compose.network"
# The network of the hub's compose project that is the servers' way out by default.
COMPOSE_USERS_NETWORK = "users"
# docker_prefix of a hub that runs in no compose project, when none is set.
DEFAULT_PREFIX = "flaskhub"
# The compose project of the hub's own container (None: none), per process (it never changes).
_hub_project: dict[int, str | None] = {}


def own_container(client: docker.DockerClient) -> Container | None:
    """The container on this engine the hub runs in (its hostname is the container's
    short id, as the engine sets it), or None on the engine's host."""
    hostname = socket.gethostname()
    try:
        container: Container = client.containers.get(hostname)
    except (NotFound, APIError):
        return None
    return container if container.id.startswith(hostname) else None


def hub_project(client: docker.DockerClient) -> str | None:
    """The compose project of the container the hub runs in, or None (asked once a process)."""
    pid = os.getpid()
    if pid not in _hub_project:
        try:
            hub = own_container(client)
        except (DockerException, requests.RequestException) as e:
            raise SpawnerError(
                f"Cannot ask the Docker engine which compose project the hub runs in: {e}",
                503,
            ) from e
        labels = (hub.labels or {}) if hub is not None else {}
        _hub_project[pid] = labels.get(COMPOSE_PROJECT)
    return _hub_project[pid]


def own_compose_project(client: docker.DockerClient) -> str:
    """The compose project of the container the hub runs in, for docker_attach's services."""
    project = hub_project(client)
    if project is None:
        raise SpawnerError(
            "docker_attach names a service:<name>, but the hub does not run in a "
            "container of a compose project: name the containers instead"
        )
    return project


def hub_prefix(client: docker.DockerClient, settings: Settings) -> str:
    """docker_prefix; unset, the name of the hub's compose project (so that two projects
    on one engine never share a name), else flaskhub."""
    if settings.docker_prefix:
        return settings.docker_prefix
    project = hub_project(client)
    if project is None:
        return DEFAULT_PREFIX
    try:
        check_derived_prefix(project, settings)
    except ConfigError as e:
        raise SpawnerError(
            f"The hub's compose project is named {project!r}, which cannot be its docker_prefix "
            f"({e}): set docker_prefix, or run the project under another name."
        ) from None
    return project


def check_derived_prefix(prefix: str, settings: Settings) -> None:
    """The checks a docker_prefix that is set passes at start (ConfigError)."""
    if not DOCKER_NAME_RE.fullmatch(prefix):
        raise ConfigError(f"Docker names are letters, digits, _ . -, got {prefix!r}")
    if settings.spawner == "swarm":
        check_swarm_prefix(prefix)


def compose_network(client: docker.DockerClient, settings: Settings) -> Network | None:
    """The network `users` of the hub's compose project (compose names it
    <project>_users: each project its own), unless docker_network is set; None if the
    hub runs in no compose project or its project has none."""
    if settings.docker_network:
        return None
    project = hub_project(client)
    if project is None:
        return None
    labels = [f"{COMPOSE_PROJECT}={project}", f"{COMPOSE_NETWORK}={COMPOSE_USERS_NETWORK}"]
    found = client.networks.list(filters={"label": labels})
    if len(found) > 1:
        names = ", ".join(sorted(n.name for n in found))
        raise SpawnerError(
            f"Compose project {project} has several networks {COMPOSE_USERS_NETWORK} "
            f"({names}): remove those it does not use, or set docker_network."
        )
    return client.networks.get(found[0].id) if found else None


def is_compose_network(client: docker.DockerClient, network: Network) -> bool:
    """Whether network is the hub's compose project's `users` network."""
    labels = network.attrs.get("Labels") or {}
    project = hub_project(client)
    users = labels.get(COMPOSE_NETWORK) == COMPOSE_USERS_NETWORK
    return users and project is not None and labels.get(COMPOSE_PROJECT) == project
