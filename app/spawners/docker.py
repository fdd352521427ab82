"""DockerSpawner: one container per server on a Docker engine, the user's files in a volume.

Containers join one user-defined bridge network (`docker_network`, created if
missing, with inter-container traffic off). The hub reaches a server at its
container's address on that network; the server reaches the hub at
`hub_connect_ip`, by default the network's gateway, which is the host itself:
`flaskhub run` also binds the hub there (see `DockerSpawner.hub_connect_ips`).

Where the hub and CHP run in containers themselves (docker-compose), they cannot
share a network with the servers without the servers reaching each other: with
`docker_attach`, each server also joins an internal bridge network of its own,
which only the containers named there join (the hub under its service name,
`hub_connect_ip`); the shared network, inter-container traffic off, is then only
the servers' way out.
Every call to the engine goes through the Docker SDK over its socket, which
gevent's monkey patching makes cooperative; each carries a timeout.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import os
import re
from collections.abc import Iterator
from functools import cached_property
from typing import Any

import docker
import gevent
import requests
from docker.errors import APIError, DockerException, ImageNotFound, NotFound
from docker.models.containers import Container
from docker.models.networks import Network
from docker.types import IPAMConfig, IPAMPool

from app.config import ATTACH_SERVICE, SERVER_SUBNET_PREFIX, Settings
from app.spawners import cpu
from app.spawners.base import Spawner, SpawnerError
from app.spawners.compose import (
    COMPOSE_PROJECT,
    COMPOSE_SERVICE,
    COMPOSE_USERS_NETWORK,
    DEFAULT_PREFIX,
    compose_network,
    hub_prefix,
    is_compose_network,
    own_compose_project,
)

log = logging.getLogger(__name__)

LABEL_USER = "org.flaskhub.user"
# The user's stable id: a renamed user, or a new user of an old name, is someone else.
LABEL_STORAGE = "org.flaskhub.storage-id"
LABEL_SERVER = "org.flaskhub.server"
LABEL_HUB = "org.flaskhub.hub"
# The labels that say a container or service is this hub's, for this user's server.
OWNER_LABELS = (LABEL_HUB, LABEL_STORAGE, LABEL_SERVER)
# Seconds any one call to the engine may take (a stop adds its grace period).
CLIENT_TIMEOUT = 30
# Connections to the engine kept per process: one per concurrent spawn or poll.
CLIENT_POOL_SIZE = 100
STOP_GRACE_SECONDS = 10
LOG_LINES = 20
NAME_SAFE = re.compile(r"[a-zA-Z0-9.-]")
MAX_NAME_PART = 100

# Off: containers on the users' bridge reach the host (the hub), never each other.
ICC_OPTION = "com.docker.network.bridge.enable_icc"
# What a container may do that a notebook never needs: forge packets (ARP, ICMP spoofing).
CAP_DROP = ("NET_RAW",)

_clients: dict[int, docker.DockerClient] = {}
_cgroup_drivers: dict[int, str] = {}
# Networks warned about by _check_network in this process.
_warned_networks: set[str] = set()
# Ranges tried for a server's own network before the spawn fails (each try is one call).
SUBNET_TRIES = 64
# The end of a server's own network's name (docker_attach).
SERVER_NETWORK_SUFFIX = "-net"
# The end of the swarm spawner's default network name (see network_name).
OVERLAY_SUFFIX = "-overlay"


def docker_client() -> docker.DockerClient:
    """This process's client of the engine (DOCKER_HOST, else the local socket)."""
    # Per pid: a client made before gunicorn forks must not be shared by workers.
    pid = os.getpid()
    if pid not in _clients:
        try:
            _clients[pid] = docker.from_env(timeout=CLIENT_TIMEOUT, max_pool_size=CLIENT_POOL_SIZE)
        except DockerException as e:
            raise SpawnerError(
                f"Cannot reach the Docker engine (DOCKER_HOST or /var/run/docker.sock): {e}", 503
            ) from e
    return _clients[pid]


def safe_name(text: str, safe: re.Pattern[str] = NAME_SAFE, longest: int = MAX_NAME_PART) -> str:
    """text as part of a Docker name: characters not `safe` become _xx (hex), so two
    texts never give one name; one longer than `longest` is cut and ends in a hash of the whole."""
    escaped = "".join(
        c if safe.fullmatch(c) else "".join(f"_{b:02x}" for b in c.encode()) for c in text
    )
    if len(escaped) <= longest:
        return escaped
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    return f"{escaped[: longest - 13]}-{digest}"


def network_name(client: docker.DockerClient, settings: Settings, driver: str = "bridge") -> str:
    """The name of the network of user containers that the hub makes if missing:
    docker_network, else docker_prefix (an overlay network's name ends in -overlay: the
    docker and swarm spawners' defaults never meet, so one engine can switch)."""
    if settings.docker_network:
        return settings.docker_network
    return hub_prefix(client, settings) + (OVERLAY_SUFFIX if driver == "overlay" else "")


def ensure_network(
    client: docker.DockerClient, settings: Settings, driver: str = "bridge", **options: Any
) -> Network:
    """The network of user containers: the hub's compose project's `users` network where
    docker_network is unset (a bridge), else one created (labelled; a bridge unless told)
    if missing.

    A bridge is made with inter-container traffic off: the hub and CHP, on the
    host, reach each container, but no container reaches another. One that is
    there already and does not hold that is refused, unless named in docker_network;
    one of another driver or scope is refused always.
    """
    network = compose_network(client, settings) if driver == "bridge" else None
    if network is None:
        try:
            network = client.networks.get(network_name(client, settings, driver))
        except NotFound:
            network = _create_network(client, settings, driver, **options)
    _check_network(client, network, settings, driver)
    return network


def _create_network(
    client: docker.DockerClient, settings: Settings, driver: str, **options: Any
) -> Network:
    name = network_name(client, settings, driver)
    if driver == "bridge":
        options["options"] = {ICC_OPTION: "false"}
    try:
        created = client.networks.create(
            name, driver=driver, labels={LABEL_HUB: hub_prefix(client, settings)}, **options
        )
        log.info("Created Docker %s network %s for user servers", driver, name)
        return client.networks.get(created.id)
    except APIError:
        # Another worker created it meanwhile.
        return client.networks.get(name)


def network_flaw(client: docker.DockerClient, network: Network, settings: Settings) -> str:
    """What lets user containers on network reach each other (or "" if nothing we can tell)."""
    attrs = network.attrs
    # Made by this hub (its label), or by compose for the hub's project.
    mine = (attrs.get("Labels") or {}).get(LABEL_HUB) == hub_prefix(client, settings)
    if not (mine or is_compose_network(client, network)):
        return "this hub did not make it"
    if attrs.get("Driver") == "bridge" and (attrs.get("Options") or {}).get(ICC_OPTION) != "false":
        return f"it lets containers reach each other ({ICC_OPTION} is not false)"
    return ""


def network_misfit(network: Network, driver: str) -> str:
    """Why the spawner cannot put servers on network at all (or "" if it can)."""
    attrs = network.attrs
    if attrs.get("Driver") != driver:
        return f"it is {_a(attrs.get('Driver'))} network, and servers need {_a(driver)} network"
    if driver == "overlay" and attrs.get("Scope") != "swarm":
        return f"its scope is {attrs.get('Scope')}, and services need a swarm-scope network"
    return ""


def _a(word: str | None) -> str:
    return f"an {word}" if word and word[0] in "aeiou" else f"a {word}"


def _check_network(
    client: docker.DockerClient, network: Network, settings: Settings, driver: str
) -> None:
    """Refuse a network of the wrong driver, or one user containers could reach each
    other on; warn (once) for the latter if the operator named it in docker_network."""
    misfit = network_misfit(network, driver)
    if misfit:
        setting = "docker_network" if settings.docker_network else "docker_prefix"
        raise SpawnerError(
            f"Docker network {network.name} cannot hold user servers: {misfit}. Set "
            f"{setting} to name another, or remove it (docker network rm {network.name}) "
            "for the hub to make its own."
        )
    flaw = network_flaw(client, network, settings)
    if not flaw:
        return
    if not settings.docker_network and is_compose_network(client, network):
        raise SpawnerError(
            f"Docker network {network.name} (network {COMPOSE_USERS_NETWORK} of the hub's "
            f"compose project) {flaw.removeprefix('it ')}, so user containers on it could "
            f'reach each other\'s servers: give it driver_opts {ICC_OPTION}: "false" in the '
            "compose file and re-create it (docker-compose down, then up), or set "
            "docker_network to use it knowingly."
        )
    if not settings.docker_network:
        raise SpawnerError(
            f"Docker network {network.name} exists but {flaw}, so user containers on it "
            f"could reach each other's servers. Remove it (docker network rm {network.name}, "
            "once nothing uses it) for the hub to make its own, set docker_prefix to a "
            "name nothing uses, or set docker_network to use it knowingly."
        )
    if network.id not in _warned_networks:
        _warned_networks.add(network.id)
        log.warning(
            "Docker network %s (docker_network) is used although %s: user containers on it "
            "may reach each other's servers and anything else on it.",
            network.name,
            flaw,
        )


def warn_of_former_names(client: docker.DockerClient, settings: Settings) -> None:
    """Say at start if users' volumes of the former default docker_prefix (flaskhub) are
    on the engine while this hub takes its prefix from its compose project: after an
    upgrade they are its users' files, under names it no longer uses."""
    prefix = hub_prefix(client, settings)
    if settings.docker_prefix or prefix == DEFAULT_PREFIX:
        return
    former = client.volumes.list(filters={"label": f"{LABEL_HUB}={DEFAULT_PREFIX}"})
    if former:
        log.warning(
            "%d volumes of users' homes are labelled %s=%s (e.g. %s), the names hubs of "
            "earlier versions gave in every compose project, and this hub names its own "
            "%s-home-… after its project: if they are its users' files, set "
            "FLASKHUB_DOCKER_PREFIX=%s (README: Deploying with docker-compose, Upgrading).",
            len(former),
            LABEL_HUB,
            DEFAULT_PREFIX,
            former[0].name,
            prefix,
            DEFAULT_PREFIX,
        )


def network_gateway(network: Network) -> str:
    """The host's address on a bridge network (its IPv4 gateway)."""
    for config in network.attrs.get("IPAM", {}).get("Config") or []:
        gateway = config.get("Gateway", "")
        if gateway and ":" not in gateway:
            return str(gateway)
    raise SpawnerError(
        f"Docker network {network.name} has no IPv4 gateway for servers to reach the hub "
        "through: set hub_connect_ip"
    )


def candidate_subnets(subnets: str, name: str) -> Iterator[ipaddress.IPv4Network]:
    """/28 ranges of subnets for the network called name: from a place its name picks,
    so that servers started at once seldom try the same one first."""
    whole = ipaddress.IPv4Network(subnets)
    size = 2 ** (32 - SERVER_SUBNET_PREFIX)
    count = whole.num_addresses // size
    start = int(hashlib.sha256(name.encode()).hexdigest(), 16) % count
    for step in range(min(count, SUBNET_TRIES)):
        first = int(whole.network_address) + (start + step) % count * size
        yield ipaddress.IPv4Network((first, SERVER_SUBNET_PREFIX))


def attach(
    client: docker.DockerClient,
    settings: Settings,
    network: Network,
    found: list[tuple[Container, str]] | None = None,
) -> int:
    """Join each docker_attach container (`found`, else looked up) to a server's network,
    under its service's or own name (those already on it are left); how many joined."""
    joined = network.attrs.get("Containers") or {}
    added = 0
    for container, alias in attachments(client, settings) if found is None else found:
        if container.id in joined:
            continue
        try:
            network.connect(container, aliases=[alias])
        except APIError as e:
            raise SpawnerError(
                f"Cannot join {container.name} (docker_attach) to network "
                f"{network.name}: {engine_says(e)}"
            ) from e
        added += 1
    return added


def attachments(client: docker.DockerClient, settings: Settings) -> list[tuple[Container, str]]:
    """The running containers docker_attach names, each with the name servers know it by."""
    found = []
    for entry in settings.docker_attach:
        if entry.startswith(ATTACH_SERVICE):
            service = entry.removeprefix(ATTACH_SERVICE)
            found += [(c, service) for c in _service_containers(client, service)]
            continue
        try:
            found.append((client.containers.get(entry), entry))
        except NotFound:
            raise SpawnerError(
                f"docker_attach names container {entry}, which is not on the engine"
            ) from None
    return found


def _service_containers(client: docker.DockerClient, service: str) -> list[Container]:
    project = own_compose_project(client)
    labels = [f"{COMPOSE_PROJECT}={project}", f"{COMPOSE_SERVICE}={service}"]
    containers: list[Container] = client.containers.list(filters={"label": labels})
    if not containers:
        raise SpawnerError(
            f"docker_attach names service:{service}, but no container of service "
            f"{service} runs in the hub's compose project {project}"
        )
    return containers


def server_networks(client: docker.DockerClient, settings: Settings) -> list[Network]:
    """The servers' own networks this hub made (docker_attach), full (with members)."""
    mine = client.networks.list(filters={"label": f"{LABEL_HUB}={hub_prefix(client, settings)}"})
    return [
        client.networks.get(n.id)
        for n in mine
        if n.name.endswith(SERVER_NETWORK_SUFFIX) and n.attrs.get("Internal")
    ]


def cpu_weight(nice: int) -> int | None:
    """The CPU weight (cpu_shares) of a process of that nice value; None for 0."""
    return cpu.shares(nice) if nice > 0 else None


def cgroup_parent(name: str, driver: str) -> str | None:
    """The group on the engine's host that all user containers go in, for the engine's
    cgroup driver (`docker info`): a slice under systemd, a path from the root under
    cgroupfs; None without server_cgroup.

    The engine makes it at the default weight, as one container: the hub's and CHP's
    containers (under /docker) and the servers together get equal shares while all
    are busy, where 200 containers were 200 shares against the hub's one."""
    if not name:
        return None
    return f"{name}.slice" if driver == "systemd" else f"/{name}"


def engine_cgroup_driver(client: docker.DockerClient) -> str:
    """The engine's cgroup driver, asked once per process (an engine's does not change
    while it runs)."""
    pid = os.getpid()
    if pid not in _cgroup_drivers:
        try:
            _cgroup_drivers[pid] = str(client.info().get("CgroupDriver") or "cgroupfs")
        except (APIError, requests.RequestException) as e:
            raise SpawnerError(f"Cannot ask the Docker engine about itself: {e}", 503) from e
    return _cgroup_drivers[pid]


def backoff() -> Iterator[None]:
    """Pauses of a wait on the engine (each next() sleeps): 0.05 s, doubling up to 0.5 s."""
    delay = 0.05
    while True:
        gevent.sleep(delay)
        yield
        delay = min(delay * 2, 0.5)


class DockerSpawner(Spawner):
    """Runs each server in a container of `docker_image` on `docker_network`."""

    start_poll_seconds = 0.5

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.container_id: str | None = None

    @property
    def client(self) -> docker.DockerClient:
        return docker_client()

    @property
    def prefix(self) -> str:
        """docker_prefix, or the one the hub's compose project gives (see hub_prefix)."""
        return hub_prefix(self.client, self.settings)

    @property
    def container_name(self) -> str:
        """The container's name: docker_prefix, then the user and server, escaped."""
        return f"{self.prefix}-{safe_name(self.file_stem)}"

    @property
    def volume_name(self) -> str:
        """The user's home volume, keyed by their stable id (never their name)."""
        return f"{self.prefix}-home-{safe_name(self.storage_id)}"

    def labels(self) -> dict[str, str]:
        """What tells an operator whose a container or volume is, and which hub made it."""
        return {
            LABEL_USER: self.user_name,
            LABEL_STORAGE: self.storage_id,
            LABEL_SERVER: self.server_name,
            LABEL_HUB: self.prefix,
        }

    def owns(self, labels: dict[str, str] | None) -> bool:
        """Whether labels say this hub made the object for this user's (stable id) server."""
        mine = self.labels()
        return all((labels or {}).get(key) == mine[key] for key in OWNER_LABELS)

    def name_taken(self, kind: str, name: str, labels: dict[str, str] | None) -> SpawnerError:
        """The spawn fails: something not this server's already has the name it needs."""
        # The labels go to the log only: they may name another user.
        log.warning(
            "Not starting %s's server: a %s named %s exists that is not this server's (labels %s)",
            self.user_name,
            kind,
            name,
            labels,
        )
        return SpawnerError(
            f"Cannot start the server: a Docker {kind} named {name} already exists and "
            f"this hub did not make it for this server, so it is left alone. An "
            f"administrator must rename or remove that {kind}, or set docker_prefix to a "
            "start of names that nothing else on the engine uses.",
            409,
        )

    @classmethod
    def hub_connect_ips(cls, settings: Settings) -> list[str]:
        """Addresses the hub must listen on besides hub_ip so that servers reach it:
        the host's gateway, unless hub_connect_ip is set or hub_ip is a wildcard."""
        if settings.hub_connect_ip or settings.hub_ip in ("", "0.0.0.0", "::"):
            return []
        return [cls.host_gateway(settings)]

    @classmethod
    def preflight(cls, settings: Settings) -> None:
        """Refuse at start a network servers cannot use (made now if missing); an engine
        that does not answer yet is only a warning (each spawn says so too)."""
        try:
            client = docker_client()
            client.ping()
        except (DockerException, requests.RequestException) as e:
            log.warning("Cannot check the Docker engine at start (%s): spawns will fail", e)
            return
        cls.check_engine(client, settings)

    @classmethod
    def check_engine(cls, client: docker.DockerClient, settings: Settings) -> None:
        """What preflight checks on an engine that answers."""
        ensure_network(client, settings)
        warn_of_former_names(client, settings)

    @classmethod
    def repair(cls, settings: Settings) -> None:
        """Join docker_attach containers to every server's network they are missing from:
        a proxy or hub container that compose re-created starts on none of them."""
        if not settings.docker_attach:
            return
        client = docker_client()
        networks = server_networks(client, settings)
        found = attachments(client, settings) if networks else []
        for network in networks:
            if attach(client, settings, network, found):
                log.warning(
                    "Joined docker_attach containers (re-created?) to network %s", network.name
                )

    @classmethod
    def host_gateway(cls, settings: Settings) -> str:
        """The host's address as servers reach it: the gateway of their network."""
        return network_gateway(ensure_network(docker_client(), settings))

    def hub_connect_url(self) -> str:
        if self.settings.server_hub_url or self.settings.hub_connect_ip:
            return super().hub_connect_url()
        return f"http://{self.gateway()}:{self.settings.hub_port}"

    def gateway(self) -> str:
        """The host's address as this server reaches it: its network's gateway."""
        return network_gateway(self.users_network)

    @cached_property
    def users_network(self) -> Network:
        """docker_network (or the compose project's `users`) as this spawn found or made
        it: the engine is asked once a spawn, not by each step and look."""
        return ensure_network(self.client, self.settings)

    # -- starting ------------------------------------------------------------

    def start(self) -> str:
        self._ensure_image()
        self._remove_leftover()
        own = None
        if self.settings.docker_attach:
            self.report_progress(30, f"Creating network {self.network_name}")
            own = self._server_network()
        self.report_progress(40, f"Creating container {self.container_name}")
        container = self._create()
        self.container_id = container.id
        if own is not None:
            self._join(own, container)
        self.report_progress(60, f"Starting container {self.container_name}")
        try:
            container.start()
        except APIError as e:
            raise SpawnerError(
                f"Container {self.container_name} did not start: {engine_says(e)}"
            ) from e
        ip = self._wait_for_address(container)
        self.report_progress(80, f"Container {self.container_name} started at {ip}")
        log.info("Started container %s for %s at %s", self.container_name, self.user_name, ip)
        return f"http://{ip}:{self.settings.docker_port}"

    def _ensure_image(self) -> None:
        """Find docker_image on the engine, else pull it once; fail naming it."""
        image = self.settings.docker_image
        self.report_progress(10, f"Looking up image {image}")
        try:
            self.client.images.get(image)
            return
        except ImageNotFound:
            pass
        self.report_progress(20, f"Pulling image {image}")
        log.info("Image %s is not on the engine; pulling it", image)
        try:
            self.client.images.pull(image)
        except (APIError, ImageNotFound) as e:
            raise SpawnerError(
                f"Image {image} is not on the Docker engine and pulling it failed: "
                f"{engine_says(e)}. Build it there (images/build) or set docker_image."
            ) from e

    def _remove_leftover(self) -> None:
        """Remove a container of this server's name left by `docker_remove = false` or a crash;
        one of that name that is not this server's fails the spawn (never removed)."""
        try:
            old = self.client.containers.get(self.container_name)
        except NotFound:
            return
        if not self.owns(old.labels):
            raise self.name_taken("container", self.container_name, old.labels)
        log.info("Removing the old container %s of %s", self.container_name, self.user_name)
        old.remove(force=True)

    def _cgroup_parent(self) -> str | None:
        if not self.settings.server_cgroup or self.settings.server_nice <= 0:
            return None  # as the local spawner: at nice 0 servers weigh as the hub does
        return cgroup_parent(self.settings.server_cgroup, engine_cgroup_driver(self.client))

    def _create(self) -> Container:
        self.client.volumes.create(name=self.volume_name, labels=self.labels())
        try:
            return self.client.containers.create(
                self.settings.docker_image,
                command=self.settings.docker_cmd or None,
                name=self.container_name,
                labels=self.labels(),
                environment=self.container_env(),
                volumes=self.mounts(),
                network=self.users_network.name,
                mem_limit=self.settings.mem_limit or None,
                nano_cpus=int(self.settings.cpu_limit * 1e9) or None,
                pids_limit=self.pids_limit(),
                cpu_shares=cpu_weight(self.settings.server_nice),
                cgroup_parent=self._cgroup_parent(),
                cap_drop=list(CAP_DROP),
            )
        except APIError as e:
            says = engine_says(e)
            if "cgroup" in says.lower() and self._cgroup_parent():
                says += " (an engine that refuses a parent group: set server_cgroup empty)"
            raise SpawnerError(f"Cannot create container {self.container_name}: {says}") from e

    @property
    def network_name(self) -> str:
        """The network the hub and CHP reach the server on: its own with docker_attach,
        else the shared docker_network."""
        if self.settings.docker_attach:
            return f"{self.container_name}{SERVER_NETWORK_SUFFIX}"
        return str(self.users_network.name)

    def _server_network(self) -> Network:
        """The server's own network, made if missing and joined by docker_attach; one of
        its name that is not this server's fails the spawn (never reused)."""
        try:
            network = self.client.networks.get(self.network_name)
        except NotFound:
            network = self._create_server_network()
        if not self.owns(network.attrs.get("Labels")):
            raise self.name_taken("network", self.network_name, network.attrs.get("Labels"))
        self._attach(network)
        return network

    def _create_server_network(self) -> Network:
        """An internal bridge of one /28 of docker_server_subnets (the engine refuses one
        in use). Internal: the engine never makes it the default route of a container
        joined to it, so CHP's published port stays where it is (moving it cuts every
        connection through it); the server reaches the outside over docker_network."""
        for subnet in candidate_subnets(self.settings.docker_server_subnets, self.network_name):
            ipam = IPAMConfig(pool_configs=[IPAMPool(subnet=str(subnet))])
            try:
                created = self.client.networks.create(
                    self.network_name,
                    driver="bridge",
                    internal=True,
                    ipam=ipam,
                    labels=self.labels(),
                    check_duplicate=True,
                )
            except APIError as e:
                if "overlap" in engine_says(e):
                    continue
                raise SpawnerError(
                    f"Cannot create network {self.network_name}: {engine_says(e)}"
                ) from e
            return self.client.networks.get(created.id)
        raise SpawnerError(
            f"No free range for network {self.network_name} in docker_server_subnets "
            f"({self.settings.docker_server_subnets}) after {SUBNET_TRIES} tries: set a "
            "larger or less used range"
        )

    def _attach(self, network: Network) -> None:
        attach(self.client, self.settings, network)

    def _join(self, network: Network, container: Container) -> None:
        """Join the server's container to its own network (before it starts)."""
        try:
            network.connect(container)
        except APIError as e:
            raise SpawnerError(
                f"Cannot join container {self.container_name} to network {network.name}: "
                f"{engine_says(e)}"
            ) from e

    def _remove_server_network(self) -> None:
        """Take everything off the server's own network, then remove it."""
        try:
            network = self.client.networks.get(self.network_name)
            if not self.owns(network.attrs.get("Labels")):
                return
            for container_id in network.attrs.get("Containers") or {}:
                network.disconnect(container_id, force=True)
            network.remove()
        except NotFound:
            return
        except APIError as e:
            # The next start of this server reuses it.
            log.warning("Could not remove network %s: %s", self.network_name, engine_says(e))

    def pids_limit(self) -> int | None:
        """pids_limit for the engine: None (no limit) for 0 or -1."""
        return self.settings.pids_limit if self.settings.pids_limit > 0 else None

    def container_env(self) -> dict[str, str]:
        """docker_env, then the JUPYTERHUB_* variables; none of the hub's own environment."""
        port = self.settings.docker_port
        return {
            **self.settings.docker_env,
            **self.env,
            # Inside the container the server listens on every address of its own.
            "JUPYTERHUB_SERVICE_URL": f"http://0.0.0.0:{port}{self.service_prefix}",
            "JUPYTERHUB_SERVICE_PORT": str(port),
        }

    def mounts(self) -> dict[str, dict[str, str]]:
        """The home volume, then docker_volumes ({username} and {storage_id} filled in)."""
        mounts = {self.volume_name: {"bind": self.settings.docker_home, "mode": "rw"}}
        for source, target in self.settings.docker_volumes.items():
            path, _, mode = target.partition(":")
            source = source.format(username=self.user_name, storage_id=self.storage_id)
            mounts[source] = {"bind": path, "mode": mode or "rw"}
        return mounts

    def _wait_for_address(self, container: Container) -> str:
        """Wait until the container runs with an address on its network; that address.

        A container that exits first fails the spawn with its status and last log
        lines. Bounded by start_timeout (the hub's gevent.Timeout); whether the server
        answers is the hub's one wait after this (http_timeout).
        """
        pause = backoff()
        while True:
            container.reload()
            if container.status in ("exited", "dead"):
                raise self._exited(container)
            ip = self._ip(container) if container.status == "running" else ""
            if ip:
                return ip
            next(pause)

    def _ip(self, container: Container) -> str:
        networks = container.attrs["NetworkSettings"]["Networks"]
        return str(networks.get(self.network_name, {}).get("IPAddress") or "")

    def exit_error(self, status: int) -> SpawnerError:
        container = self._container()
        return self._exited(container) if container is not None else super().exit_error(status)

    def _exited(self, container: Container) -> SpawnerError:
        code = container.attrs["State"]["ExitCode"]
        lines = container.logs(tail=LOG_LINES).decode(errors="replace")
        return self.exited_error(f"Container {self.container_name}", code, lines)

    def exited_error(self, what: str, code: int, lines: str) -> SpawnerError:
        """A server that exited as it started: its status and last log lines."""
        return SpawnerError(
            f"{what} (image {self.settings.docker_image}) exited with status {code} as it "
            f"started. Its last log lines:\n{lines.rstrip() or '(none)'}"
        )

    # -- watching and stopping -----------------------------------------------

    def _container(self) -> Container | None:
        if self.container_id is None:
            return None
        try:
            return self.client.containers.get(self.container_id)
        except NotFound:
            return None

    def poll(self) -> int | None:
        try:
            container = self._container()
        except DockerException as e:
            # The engine restarting is no reason to call every server dead.
            log.warning("Cannot poll container of %s: %s", self.user_name, e)
            return None
        if container is None:
            return 0
        state = container.attrs["State"]
        return None if state["Running"] else int(state["ExitCode"] or 0)

    def stop(self, now: bool = False) -> None:
        container = self._container()
        if container is not None:
            self._stop_container(container, now)
        if self.settings.docker_attach:
            self._remove_server_network()

    def _stop_container(self, container: Container, now: bool) -> None:
        container.stop(timeout=0 if now else STOP_GRACE_SECONDS)
        log.info("Stopped container %s of %s", self.container_name, self.user_name)
        if self.settings.docker_remove:
            try:
                container.remove(force=True)
            except NotFound:
                pass

    def delete_forever(self) -> None:
        if self.settings.keep_user_files:
            log.info("Keeping volume %s of deleted user %s", self.volume_name, self.user_name)
            return
        try:
            self.client.volumes.get(self.volume_name).remove()
        except NotFound:
            return
        except APIError as e:
            log.warning("Could not remove volume %s: %s", self.volume_name, engine_says(e))
            return
        log.info("Removed volume %s of deleted user %s", self.volume_name, self.user_name)

    def get_state(self) -> dict[str, Any]:
        return {"container_id": self.container_id}

    def load_state(self, state: dict[str, Any]) -> None:
        self.container_id = state.get("container_id")

    def clear_state(self) -> None:
        self.container_id = None


def engine_says(error: DockerException) -> str:
    """The engine's own words for an error."""
    return str(getattr(error, "explanation", None) or error)
