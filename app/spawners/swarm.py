"""SwarmSpawner: one Docker Swarm service per server (one replica, never restarted).

It is the DockerSpawner's design on a swarm: the same names, labels, home
volume, environment and failure messages, through a swarm manager's engine.
The host is on no overlay network, but every task also joins the node's
`docker_gwbridge` bridge (inter-container traffic off): with `swarm_address =
"docker_gwbridge"` (one node, the hub on it) the hub and CHP reach a task at its
address there, the task reaches the hub at that bridge's gateway, and each
service has an overlay network of its own. With `swarm_address = "published"`
(several nodes) each service also has an overlay of its own, and publishes its
server port in `host` mode on the node its task lands on (a port the engine
picks): the hub and CHP reach it at that node's address and port, and the
server reaches the hub through the proxy's port on its own node's host
(`host.docker.internal`, which each node's engine resolves to its docker0
address). No network is shared, so a server reaches another only where anyone
can, at its published server port. With `swarm_address = "network"` all
services join `docker_network`, an attachable overlay network (by default
`<docker_prefix>-overlay`, created at start if missing), on which the hub and
CHP run themselves (as swarm services or attached containers) and use the
task's address. Services skip the virtual IP (`dnsrr`) and publish nothing
through the routing mesh: it needs IPVS.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import time
from functools import cached_property
from typing import Any

import docker
import gevent
from docker.errors import APIError, DockerException, NotFound
from docker.models.networks import Network
from docker.models.nodes import Node
from docker.models.services import Service
from docker.types import DriverConfig, EndpointSpec, Mount, Resources, RestartPolicy
from docker.utils import parse_bytes

from app.config import MAX_SWARM_PREFIX, Settings
from app.spawners.base import KEPT, SpawnerError
from app.spawners.compose import own_container
from app.spawners.docker import (
    CAP_DROP,
    LOG_LINES,
    STOP_GRACE_SECONDS,
    DockerSpawner,
    backoff,
    docker_client,
    engine_says,
    ensure_network,
    network_gateway,
    safe_name,
)
from proxy.hosts import url_host

log = logging.getLogger(__name__)

GWBRIDGE = "docker_gwbridge"
PUBLISHED = "published"
# The name a task of "published" mode reaches its node's host by: each node's engine
# resolves host-gateway to its own docker0 address (Engine 20.10 does for services too).
NODE_HOST = "host.docker.internal"
# What dockerd itself gives docker_gwbridge when it makes it for the first task.
GWBRIDGE_OPTIONS = {
    "com.docker.network.bridge.name": GWBRIDGE,
    "com.docker.network.bridge.enable_icc": "false",
    "com.docker.network.bridge.enable_ip_masquerade": "true",
}
# A service name is one DNS label: letters, digits, - and _, at most 63 characters.
SERVICE_NAME_MAX = 63
SERVICE_SAFE = re.compile(r"[a-zA-Z0-9]")
# Task states after which the task never runs again (swarmkit's names).
ENDED = frozenset({"complete", "failed", "shutdown", "rejected", "orphaned", "remove"})
SERVICE_LABEL = "com.docker.swarm.service.id"
# Seconds a look at the swarm's nodes (one call) is used for: by every poll, and by the
# reconcile loop's check for a node lost or drained (a node is down ~15-20 s after it
# stops answering; its servers are then reported stopped within this and a tick).
NODE_CHECK_SECONDS = 5.0
# Per process: when the nodes were last looked at, and which could not run servers.
_nodes_seen: dict[int, tuple[float, dict[str, str]]] = {}
# Per process: the lost nodes the reconcile loop was last told of.
_nodes_told: dict[int, frozenset[str]] = {}


def lost_nodes(client: docker.DockerClient, fresh: bool = False) -> dict[str, str]:
    """The nodes no server can run on now, by id, each with why: "(<host>) is down",
    "(<host>) was drained";
    looked up at most every NODE_CHECK_SECONDS unless fresh."""
    pid, now = os.getpid(), time.monotonic()
    seen = _nodes_seen.get(pid)
    if seen is None or fresh or now - seen[0] >= NODE_CHECK_SECONDS:
        seen = (now, {node.id: why for node in client.nodes.list() if (why := _node_lost(node))})
        _nodes_seen[pid] = seen
    return seen[1]


def _node_lost(node: Node) -> str:
    """Why no server can run on node ("" if it can)."""
    name = node.attrs.get("Description", {}).get("Hostname") or node.id[:12]
    state = node.attrs.get("Status", {}).get("State", "unknown")
    if state != "ready":
        return f"({name}) is {state}"
    if node.attrs.get("Spec", {}).get("Availability") == "drain":
        return f"({name}) was drained"
    return ""


def ensure_gwbridge(client: docker.DockerClient) -> Network:
    """The node's docker_gwbridge, made as dockerd makes it if no task has made it yet."""
    try:
        return client.networks.get(GWBRIDGE)
    except NotFound:
        pass
    try:
        client.networks.create(GWBRIDGE, driver="bridge", options=GWBRIDGE_OPTIONS)
        log.info("Created %s, through which the hub and its servers reach each other", GWBRIDGE)
    except APIError:
        pass  # Made meanwhile by dockerd or another worker.
    return client.networks.get(GWBRIDGE)


class ImageMissing(SpawnerError):
    """A node rejected the task: the image is not there (and could not be pulled)."""

    def __init__(self, message: str, node_id: str, node_name: str) -> None:
        super().__init__(message)
        self.node_id = node_id
        self.node_name = node_name


def shares_network(settings: Settings) -> bool:
    """Whether tasks join one network (docker_network, or the default "network" mode's)."""
    return settings.swarm_address == "network" or bool(settings.docker_network)


def node_address(node: Node) -> str:
    """The address other machines reach a node at: the one it advertises to the swarm (a
    manager may say 0.0.0.0 there: then its managers' address), "" if none."""
    address = str(node.attrs.get("Status", {}).get("Addr") or "")
    if address in ("", "0.0.0.0"):
        manager = str(node.attrs.get("ManagerStatus", {}).get("Addr") or "")
        address = manager.rsplit(":", 1)[0].strip("[]")
    return address


def published_port(task: dict[str, Any], target: int) -> int:
    """The node's port published for a task's port target (0 if none yet)."""
    for port in task["Status"].get("PortStatus", {}).get("Ports") or []:
        if port.get("TargetPort") == target and port.get("PublishedPort"):
            return int(port["PublishedPort"])
    return 0


class SwarmSpawner(DockerSpawner):
    """Runs each server as a one-replica swarm service of `docker_image`."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.service_id: str | None = None
        # The node of the user's home volume (local volumes: one per node), once a task ran.
        self.home_node = ""

    @classmethod
    def machines_changed(cls, settings: Settings) -> bool:
        """Whether a node was lost or drained since the loop last asked."""
        try:
            lost = frozenset(lost_nodes(docker_client()))
        except (DockerException, SpawnerError) as e:
            # Asked every tick: not again for a node check, and quietly (each poll warns).
            pid = os.getpid()
            _nodes_seen[pid] = (time.monotonic(), _nodes_seen.get(pid, (0.0, {}))[1])
            log.debug("Cannot list the swarm's nodes: %s", e)
            return False
        told = _nodes_told.get(os.getpid(), frozenset())
        _nodes_told[os.getpid()] = lost
        return bool(lost - told)

    @classmethod
    def check_engine(cls, client: docker.DockerClient, settings: Settings) -> None:
        """The address mode can work where the hub runs, and the shared network is an
        overlay network (made if missing)."""
        # "published" and "network" work with the hub in a container; docker_gwbridge does not.
        hub = own_container(client) if settings.swarm_address == GWBRIDGE else None
        if hub is not None:
            raise SpawnerError(
                f'swarm_address = "{GWBRIDGE}" needs the hub and CHP on the engine\'s host '
                f"(they reach each task at its address on the node's {GWBRIDGE}), but the hub "
                f'runs in container {hub.name}: set swarm_address = "{PUBLISHED}" (README: '
                "Swarm)."
            )
        if shares_network(settings):
            ensure_network(client, settings, driver="overlay", attachable=True)

    @classmethod
    def host_gateway(cls, settings: Settings) -> str:
        """The host's address as tasks reach it: docker_gwbridge's gateway."""
        return network_gateway(ensure_gwbridge(docker_client()))

    @classmethod
    def hub_connect_ips(cls, settings: Settings) -> list[str]:
        """In "published" mode servers reach the hub only through the proxy: none."""
        if settings.swarm_address == PUBLISHED:
            return []
        return super().hub_connect_ips(settings)

    def hub_connect_url(self) -> str:
        """In "published" mode, the proxy's port on the task's own node's host (the proxy
        routes /hub/ to the hub); the hub's own port is on no network a server joins.
        server_hub_url, where set (a load balancer's), wins."""
        settings = self.settings
        if settings.swarm_address == PUBLISHED and not settings.server_hub_url:
            return f"http://{NODE_HOST}:{settings.swarm_proxy_port or settings.port}"
        return super().hub_connect_url()

    @property
    def service_name(self) -> str:
        """docker_prefix, then the user and server with all but letters and digits escaped."""
        room = SERVICE_NAME_MAX - len(self.prefix) - 1
        assert room >= SERVICE_NAME_MAX - MAX_SWARM_PREFIX - 1
        return f"{self.prefix}-{safe_name(self.file_stem, SERVICE_SAFE, room)}"

    @property
    def shares_network(self) -> bool:
        """Whether the task joins docker_network (else an overlay network of its own)."""
        return shares_network(self.settings)

    def gateway(self) -> str:
        """The host's address as tasks reach it: docker_gwbridge's gateway."""
        return self.host_gateway(self.settings)

    @cached_property
    def task_network(self) -> Network:
        """The task's network, looked up or made once a spawn: docker_network (an
        attachable overlay network, made if missing) in "network" mode or where set, else
        an overlay network of its own.

        An overlay network has no switch for inter-container traffic: tasks on one
        network reach each other. The hub and CHP must share docker_network with the
        tasks in "network" mode; in "docker_gwbridge" mode they reach each task over
        docker_gwbridge (inter-container traffic off), so no two servers need share one.
        """
        if self.shares_network:
            return ensure_network(self.client, self.settings, driver="overlay", attachable=True)
        try:
            network = self.client.networks.get(self.service_name)
        except NotFound:
            network = self._create_own_network()
        labels = network.attrs.get("Labels")
        if not self.owns(labels):
            raise self.name_taken("network", self.service_name, labels)
        return network

    def _create_own_network(self) -> Network:
        try:
            created = self.client.networks.create(
                self.service_name, driver="overlay", labels=self.labels(), check_duplicate=True
            )
        except APIError as e:
            raise SpawnerError(
                f"Cannot create network {self.service_name}: {engine_says(e)}"
            ) from e
        return self.client.networks.get(created.id)

    def _remove_own_network(self) -> None:
        """Remove this server's own network, if it has one and it is there."""
        if self.shares_network:
            return
        try:
            network = self.client.networks.get(self.service_name)
            if self.owns(network.attrs.get("Labels")):
                network.remove()
        except NotFound:
            return
        except APIError as e:
            # Still in use by a task on its way out: the next start reuses it.
            log.warning("Could not remove network %s: %s", self.service_name, engine_says(e))

    # -- starting ------------------------------------------------------------

    def start(self) -> str:
        self._look_up_image()
        self._remove_leftover()
        avoided: dict[str, str] = {}
        while True:
            self.report_progress(40, f"Creating service {self.service_name}")
            service = self._create(avoid=list(avoided))
            self.service_id = service.id
            try:
                address = self._wait_for_task(service)
                break
            except ImageMissing as e:
                self._avoid(service, e, avoided)
        self.report_progress(80, f"Service {self.service_name} running at {address}")
        log.info("Started service %s for %s at %s", self.service_name, self.user_name, address)
        return f"http://{address}"

    def _avoid(self, service: Service, missing: ImageMissing, avoided: dict[str, str]) -> None:
        """After a node rejected the task for a missing image: remove the service and try
        again on another node (shown as progress), or fail naming the nodes tried."""
        service.remove()
        self.service_id = None
        avoided[missing.node_id] = missing.node_name
        if not self._nodes_left(avoided):
            tried = ", ".join(avoided.values())
            raise SpawnerError(
                f"{missing} No other node can run it (tried {tried}): put the image on the "
                "nodes (images/build there, or `docker save | docker load`), or push it to a "
                "registry they pull from."
            )
        self.report_progress(
            45, f"Image {self.settings.docker_image} is not on {missing.node_name}: trying another"
        )
        log.warning("%s; trying another node for %s", missing, self.user_name)

    def _nodes_left(self, avoided: dict[str, str]) -> bool:
        """Whether a node not avoided may take the task (ready and active; not pinned home)."""
        if self.homes_are_local and self.home_node:
            return False
        return any(n.id not in avoided and not _node_lost(n) for n in self.client.nodes.list())

    def _look_up_image(self) -> None:
        """Say whether this engine has docker_image; the node of the task pulls it if need be."""
        image = self.settings.docker_image
        self.report_progress(10, f"Looking up image {image}")
        if not self.client.images.list(name=image):
            self.report_progress(20, f"Image {image} is not on this node: the task's node pulls it")

    def _remove_leftover(self) -> None:
        """Remove a service of this server's name left by a crash of the hub; one of that
        name that is not this server's fails the spawn (never removed)."""
        try:
            old = self.client.services.get(self.service_name)
        except NotFound:
            return
        labels = old.attrs["Spec"].get("Labels")
        if not self.owns(labels):
            raise self.name_taken("service", self.service_name, labels)
        log.info("Removing the old service %s of %s", self.service_name, self.user_name)
        old.remove()

    def _create(self, avoid: list[str] | None = None) -> Service:
        settings = self.settings
        constraints = self.home_constraints() + [f"node.id!={node}" for node in avoid or []]
        try:
            return self.client.services.create(
                settings.docker_image,
                args=settings.docker_cmd or None,
                name=self.service_name,
                labels=self.labels(),
                container_labels=self.labels(),
                env=self.container_env(),
                mounts=self.mount_specs(),
                networks=[self.task_network.name],
                resources=self.resources(),
                # Engine API 1.41 (Engine 20.10) takes capabilities by their kernel names.
                cap_drop=[f"CAP_{name}" for name in CAP_DROP],
                constraints=constraints or None,
                restart_policy=RestartPolicy(condition="none"),
                endpoint_spec=self.endpoint_spec(),
                hosts=self.hosts(),
                stop_grace_period=STOP_GRACE_SECONDS * 10**9,
            )
        except APIError as e:
            raise SpawnerError(
                f"Cannot create service {self.service_name}: {engine_says(e)}"
            ) from e

    def endpoint_spec(self) -> EndpointSpec:
        """DNS round robin (no virtual IP); in "published" mode the server port published
        in host mode on the task's node, at a port the engine picks."""
        if self.settings.swarm_address != PUBLISHED:
            return EndpointSpec(mode="dnsrr")
        port = {"Protocol": "tcp", "TargetPort": self.settings.docker_port, "PublishMode": "host"}
        return EndpointSpec(mode="dnsrr", ports=[port])  # type: ignore[arg-type]

    def hosts(self) -> dict[str, str] | None:
        """In "published" mode, NODE_HOST: the task's own node's host."""
        return {NODE_HOST: "host-gateway"} if self.settings.swarm_address == PUBLISHED else None

    def mount_specs(self) -> list[Mount]:
        """mounts() as the mounts of a service: volumes (made by the task's node) or host paths."""
        specs = []
        for source, target in self.mounts().items():
            home = source == self.volume_name
            driver = self.settings.swarm_volume_driver
            specs.append(
                Mount(
                    target["bind"],
                    source,
                    type="bind" if source.startswith("/") else "volume",
                    read_only=target["mode"] == "ro",
                    labels=self.labels() if home else None,
                    driver_config=DriverConfig(driver) if home and driver else None,
                )
            )
        return specs

    def resources(self) -> Resources:
        """mem_limit, cpu_limit and pids_limit as limits, mem_guarantee and cpu_guarantee as
        reservations."""
        settings = self.settings
        resources = Resources(
            mem_limit=parse_bytes(settings.mem_limit) if settings.mem_limit else None,
            cpu_limit=int(settings.cpu_limit * 1e9) or None,
            mem_reservation=parse_bytes(settings.mem_guarantee) if settings.mem_guarantee else None,
            cpu_reservation=int(settings.cpu_guarantee * 1e9) or None,
        )
        # The SDK has no argument for it; Engine API 1.41 reads Limits.Pids.
        if pids := self.pids_limit():
            resources.setdefault("Limits", {})["Pids"] = pids
        return resources

    def _wait_for_task(self, service: Service) -> str:
        """Wait until the task runs with an address; its host:port.

        A task that ends first fails the spawn with its error, exit status and
        last log lines. Bounded by start_timeout (the hub's gevent.Timeout); whether the
        server answers is the hub's one wait after this (http_timeout).
        """
        reported: set[str] = set()
        pause = backoff()
        while True:
            task = _latest(service.tasks())
            state = task["Status"]["State"] if task else "new"
            if state in ENDED:
                raise self._ended(service, task)
            if state not in reported:
                reported.add(state)
                self._report_state(state, task)
            host, port = self._address(task) if state == "running" else ("", 0)
            if host and task:
                self._note_home(task)
                return f"{url_host(host)}:{port}"
            next(pause)

    def _report_state(self, state: str, task: dict[str, Any] | None) -> None:
        if state == "assigned" and task:
            self.report_progress(50, f"Task of {self.service_name} scheduled on a node")
        elif state == "running":
            self.report_progress(70, f"Task of {self.service_name} running")

    def _address(self, task: dict[str, Any] | None) -> tuple[str, int]:
        """The task's host and port the hub reaches it at (per swarm_address), or ("", 0)
        if not yet known."""
        port = self.settings.docker_port
        if task is None:
            return "", 0
        if self.settings.swarm_address == PUBLISHED:
            published = published_port(task, port)
            node_id = str(task.get("NodeID") or "")
            host = node_address(self.client.nodes.get(node_id)) if published and node_id else ""
            if host and _loopback(host):
                # A swarm advertised on loopback has one node, this one: the hub and CHP
                # (maybe in containers on it) reach its host at docker_gwbridge's gateway.
                host = self.host_gateway(self.settings)
            return host, published
        if self.settings.swarm_address == "network":
            for attachment in task.get("NetworksAttachments") or []:
                if attachment["Network"]["Spec"]["Name"] == self.task_network.name:
                    return str(attachment["Addresses"][0].split("/")[0]), port
            return "", 0
        container_id = task["Status"].get("ContainerStatus", {}).get("ContainerID", "")
        endpoints = ensure_gwbridge(self.client).attrs.get("Containers") or {}
        address = endpoints.get(container_id, {}).get("IPv4Address", "")
        return str(address.split("/")[0]), port

    def exit_error(self, status: int) -> SpawnerError:
        try:
            service = self._service()
            task = _latest(service.tasks()) if service is not None else None
        except DockerException:
            service = None
        if service is None or task is None:
            return super().exit_error(status)
        return self._ended(service, task)

    def _ended(self, service: Service, task: dict[str, Any] | None) -> SpawnerError:
        """Why a task ended as it started: the engine's error, else its status and log."""
        status = task["Status"] if task else {}
        code = status.get("ContainerStatus", {}).get("ExitCode", 0)
        what = f"Service {self.service_name}"
        if not code:
            why = status.get("Err") or status.get("Message") or status.get("State")
            node_id = str(task.get("NodeID") or "") if task else ""
            node = self._node_name(node_id)
            message = (
                f"{what} (image {self.settings.docker_image}) could not start its server"
                f"{f' on {node}' if node else ''}: {why}."
            )
            if node_id and "No such image" in str(why):
                return ImageMissing(message, node_id, node)
            return SpawnerError(message)
        lines = b"".join(service.logs(stdout=True, stderr=True, tail=LOG_LINES))
        return self.exited_error(what, code, lines.decode(errors="replace"))

    def _node_name(self, node_id: str) -> str:
        """A node's host name ("node <id>" if it cannot be read; "" for no node)."""
        if not node_id:
            return ""
        try:
            hostname = self.client.nodes.get(node_id).attrs["Description"]["Hostname"]
            return f"node {hostname}"
        except (DockerException, KeyError):
            return f"node {node_id[:12]}"

    # -- watching and stopping -----------------------------------------------

    def _service(self) -> Service | None:
        if self.service_id is None:
            return None
        try:
            return self.client.services.get(self.service_id)
        except NotFound:
            return None

    def poll(self) -> int | None:
        try:
            service = self._service()
            tasks = service.tasks() if service else []
            lost = self._lost(tasks)
        except DockerException as e:
            log.warning("Cannot poll service of %s: %s", self.user_name, e)
            return None
        if lost and service is not None:
            return self._end_lost(service, lost)
        task = _latest(tasks)
        if task is None:
            return 0
        status = task["Status"]
        if status["State"] not in ENDED:
            return None
        return int(status.get("ContainerStatus", {}).get("ExitCode") or 0)

    def _lost(self, tasks: list[dict[str, Any]]) -> str:
        """Why the server is lost with the machine it ran on ("" if it is not): its task's
        node is down or drained, or the swarm gave it a second task (elsewhere, where its
        home is not: a server is never restarted)."""
        if not tasks:
            return ""
        first = min(tasks, key=lambda t: t["CreatedAt"])
        why = lost_nodes(self.client).get(first.get("NodeID", ""), "")
        if why:
            return f"the machine it ran on {why}"
        return "" if len(tasks) == 1 else "the swarm moved it to another machine"

    def _end_lost(self, service: Service, why: str) -> int:
        """Remove a lost server's service (so the swarm starts it nowhere else, away from
        its home) and say why it ended."""
        self.end_reason = f"Your server was stopped: {why}. Start it again."
        log.warning(
            "Server of %s is lost: %s; removing service %s", self.user_name, why, self.service_name
        )
        try:
            service.remove()
        except DockerException as e:
            log.warning("Could not remove service %s: %s", self.service_name, engine_says(e))
        return 1

    def stop(self, now: bool = False) -> None:
        service = self._service()
        if service is not None:
            if not now:
                self._wait_for_tasks_to_end(service)
            service.remove()
            log.info("Removed service %s of %s", self.service_name, self.user_name)
            self._wait_for_containers(now)
        self._remove_own_network()

    def _wait_for_tasks_to_end(self, service: Service) -> None:
        """Scale the service to 0 and wait (bounded) until each task's node reports its
        container stopped, on whatever node: the next start may mount the same home
        there. Removing the service at once forgets its tasks while their containers
        still run on their nodes. A task on a lost node is not waited for."""
        try:
            service.scale(0)
        except DockerException as e:
            log.warning("Could not scale service %s to 0: %s", self.service_name, e)
            return
        pause = backoff()
        with gevent.Timeout(STOP_GRACE_SECONDS + 5, False):
            while self._tasks_still_running(service):
                next(pause)

    def _tasks_still_running(self, service: Service) -> bool:
        lost = lost_nodes(self.client)
        return any(
            t["Status"]["State"] not in ENDED and t.get("NodeID") not in lost
            for t in service.tasks()
        )

    def _wait_for_containers(self, now: bool) -> None:
        """Wait (bounded) until the service's containers on this node are gone: the next
        start may mount the same volume. `now`: remove them rather than wait."""
        selector = {"label": f"{SERVICE_LABEL}={self.service_id}"}
        pause = backoff()
        # Past the grace period and a margin, dockerd has killed them: stop waiting.
        with gevent.Timeout(STOP_GRACE_SECONDS + 5, False):
            while containers := self.client.containers.list(all=True, filters=selector):
                for container in containers if now else []:
                    try:
                        container.remove(force=True)
                    except NotFound:
                        pass
                next(pause)

    def get_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {"service_id": self.service_id}
        if self.home_node:
            state[KEPT] = {"home_node": self.home_node}
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        self.service_id = state.get("service_id")
        self.home_node = str((state.get(KEPT) or {}).get("home_node") or "")

    def clear_state(self) -> None:
        self.service_id = None

    # -- homes ---------------------------------------------------------------

    @property
    def homes_are_local(self) -> bool:
        """Whether the home volume lives on one node (no shared swarm_volume_driver)."""
        return self.settings.swarm_volume_driver in ("", "local")

    def home_constraints(self) -> list[str]:
        """Where the task may run: swarm_placement, and the node of the home, if known."""
        constraints = list(self.settings.swarm_placement)
        if self.homes_are_local and self.home_node:
            self._check_home_node()
            constraints.append(f"node.id=={self.home_node}")
        return constraints

    def _check_home_node(self) -> None:
        """Fail the spawn, saying why and what to do, when the home's node cannot run it."""
        nodes = {node.id for node in self.client.nodes.list()}
        why = lost_nodes(self.client, fresh=True).get(self.home_node, "")
        if self.home_node not in nodes:
            why = f"({self.home_node[:12]}) has left the swarm"
        if why:
            raise SpawnerError(
                f"Your files are on one machine, and that machine {why}: "
                "your server can start only there, so it does not start now (never with an "
                "empty home elsewhere). Try again once that machine is back, or ask an "
                "administrator to let you start afresh elsewhere "
                f"(flaskhub server forget-home {self.user_name}).",
                503,
            )

    def _note_home(self, task: dict[str, Any]) -> None:
        """Remember the node of the running task: its home volume is there now."""
        if self.homes_are_local and task.get("NodeID"):
            self.home_node = str(task["NodeID"])


def _loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return address == "localhost"


def _latest(tasks: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The newest task of a service (one replica, never restarted: the only one)."""
    return max(tasks, key=lambda t: t["CreatedAt"], default=None)
