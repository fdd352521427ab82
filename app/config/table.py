"""The one settings table: the dataclass Settings, each field a setting with its type,
default and help text; its environment variable is FLASKHUB_<NAME>. SETTINGS and BY_NAME
read the same rows from it, and coerce() turns a raw value into the row's type."""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field, fields
from typing import Any, get_origin, get_type_hints
from urllib.parse import quote

from app.version import JUPYTERHUB_API_VERSION, __version__
from proxy.hosts import url_host

ENV_PREFIX = "FLASKHUB_"
CONFIG_FILE_ENV = "FLASKHUB_CONFIG_FILE"
DEFAULT_CONFIG_FILE = "flaskhub.toml"
DOCKER_NAME_RE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")
# A swarm service's name is one DNS label (swarmkit refuses '.' and more than 63 characters).
SERVICE_NAME_RE = re.compile(r"[a-zA-Z0-9](?:[-_]*[a-zA-Z0-9]+)*")
# Leaves room in a service name for the user and server.
MAX_SWARM_PREFIX = 40
# A docker_attach entry naming a service of the hub's compose project.
ATTACH_SERVICE = "service:"
# Each server's own network (docker_attach): 14 addresses, for the server, the hub, CHP
# and replicas of either.
SERVER_SUBNET_PREFIX = 28
# Authenticators whose users come from an identity provider: they must say who may log in.
PROVIDER_AUTHENTICATORS: tuple[str, ...] = ("ldap", "oidc", "oauth2")
AUTHENTICATOR_NAMES = ("dummy", "password", *PROVIDER_AUTHENTICATORS)
# In subdomain_host: the public port (setting port).
PORT_FIELD = "{port}"
# sun_path holds 108 bytes with the terminating NUL.
MAX_SOCKET_PATH = 107


class ConfigError(ValueError):
    """A setting is unknown or has a value of the wrong kind; the message names it."""


# The lowest CPU priority a process can have (nice 19).
MAX_NICE = 19

# The settings a spawn option may choose per server (what spawners read at start).
SERVER_SETTINGS = (
    "spawner_cmd",
    "docker_image",
    "docker_cmd",
    "mem_limit",
    "cpu_limit",
    "mem_guarantee",
    "cpu_guarantee",
    "swarm_placement",
)

# Settings where -1 means no limit, as for Docker (as 0 does).
MINUS_ONE_OK = frozenset({"pids_limit"})


def setting(default: Any, help: str, *, secret: bool = False) -> Any:
    """A row of the settings table: a Settings field with its default and help text
    (a secret one is left out of the settings' repr, so logs and tracebacks never show it)."""
    metadata = {"help": help}
    if isinstance(default, list | dict):
        return field(
            default_factory=lambda: copy.deepcopy(default), metadata=metadata, repr=not secret
        )
    return field(default=default, metadata=metadata, repr=not secret)


@dataclass(frozen=True)
class Settings:
    """The settings table: one typed field per setting (env var FLASKHUB_<NAME>).

    load() fills it from every source and resolves the derived values; the
    secrets come from resolve_secrets().
    """

    ip: str = setting("127.0.0.1", "Public address of the proxy (what people open).")
    port: int = setting(8000, "Public port of the proxy.")
    hub_ip: str = setting("127.0.0.1", "Address the hub (gunicorn) listens on.")
    hub_port: int = setting(8081, "Port the hub listens on.")
    proxy_api_port: int = setting(8001, "Port of CHP's REST API (on 127.0.0.1).")
    proxy_api_url: str = setting(
        "", "CHP's REST API URL when external (default from proxy_api_port)."
    )
    proxy_api_urls: list[str] = setting(
        [],
        "Every CHP instance's REST API URL when several run (a proxy on each of several "
        "machines behind a load balancer): the hub keeps the routes of each. Replaces "
        "proxy_api_url; needs proxy_auto_start = false.",
    )
    proxy_api_every_address: bool = setting(
        False,
        "The proxy API URL's host name stands for every address it resolves to, one CHP "
        "instance at each (a swarm's global proxy service by its dnsrr name), looked up "
        "again every 5 s; needs proxy_auto_start = false.",
    )
    proxy_auto_start: bool = setting(True, "Start and supervise CHP with `flaskhub run`.")
    drain_seconds: float = setting(
        0.0,
        "Seconds the hub goes on serving after SIGTERM before it stops listening, for load "
        "balancers and a swarm's DNS on every node to stop sending it requests (a rolling "
        "upgrade; the stack sets 5). A second SIGTERM stops it at once.",
    )
    hub_socket: str = setting(
        "",
        "Unix socket the proxy reaches the hub through; X-Forwarded-For is believed there "
        "(default <data_dir>/hub.sock when the hub starts CHP; empty otherwise).",
    )
    trusted_proxies: list[str] = setting(
        [],
        "Addresses or networks of proxies whose X-Forwarded-For is believed (besides "
        'hub_socket), e.g. ["10.0.0.5"]; never one users\' servers can connect from.',
    )
    proxy_auth_token: str = setting(
        "", "Token for CHP's API (else CONFIGPROXY_AUTH_TOKEN, else generated).", secret=True
    )
    db_url: str = setting("", "SQLAlchemy URL (default sqlite:///<data_dir>/flaskhub.sqlite).")
    data_dir: str = setting("./data", "Where the database, secrets and user directories live.")
    cookie_secret: str = setting(
        "", "Secret that signs login cookies (else generated, kept in data_dir).", secret=True
    )
    authenticator: str = setting(
        "dummy",
        "`dummy` (any name), `password` (accounts with passwords), `ldap`, `oidc` or `oauth2`.",
    )
    dummy_password: str = setting(
        "", "With the dummy authenticator: the one password accepted.", secret=True
    )
    # Who may log in (README, Authentication).
    allowed_users: list[str] = setting(
        [], "Names that may log in (besides allowed_groups and admins)."
    )
    blocked_users: list[str] = setting([], "Names that may never log in, whatever else says.")
    allowed_groups: list[str] = setting(
        [], "Members of these provider groups may log in (ldap, oidc, oauth2)."
    )
    admin_groups: list[str] = setting(
        [], "Members of these provider groups are admins (re-read at every login) and may log in."
    )
    allow_all: bool = setting(
        False,
        "Everyone the authenticator accepts may log in (needed for ldap/oidc/oauth2 "
        "without allowed_users or allowed_groups).",
    )
    # authenticator = "ldap" (README, Authentication).
    ldap_url: str = setting("", "The LDAP server: ldaps://host[:port], or ldap://host[:port].")
    ldap_start_tls: bool = setting(
        True, "StartTLS on an ldap:// URL; false is allowed only for a server on loopback."
    )
    ldap_ca_file: str = setting(
        "", "CA certificates (PEM) that sign the LDAP server's (empty: the system's)."
    )
    ldap_bind_dn_template: list[str] = setting(
        [], "Direct bind: DNs to try with {username}, e.g. uid={username},ou=people,dc=x,dc=org."
    )
    ldap_search_base: str = setting(
        "", "Search-then-bind: where to look for the user's entry (instead of templates)."
    )
    ldap_search_filter: str = setting(
        "(uid={username})", "Search-then-bind: the filter that finds exactly one user entry."
    )
    ldap_username_attribute: str = setting(
        "uid", "The attribute of the bound entry that must equal the normalised name typed."
    )
    ldap_bind_dn: str = setting(
        "",
        "The service account that searches (empty: anonymous search); set, it also re-reads "
        "users' groups after auth_refresh_age.",
    )
    ldap_bind_password: str = setting("", "The service account's password.", secret=True)
    ldap_group_search_base: str = setting(
        "", "Where the groups are (empty: no groups; allowed_groups, admin_groups then unusable)."
    )
    ldap_group_search_filter: str = setting(
        "(|(member={dn})(uniqueMember={dn})(memberUid={username}))",
        "The groups of a user, with {dn} (the user's DN) and {username}; named by cn.",
    )
    # authenticator = "oidc" or "oauth2" (README, Authentication).
    oauth_issuer: str = setting(
        "", "oidc: the provider's issuer URL (https); its endpoints come from discovery."
    )
    oauth_authorize_url: str = setting(
        "", "oauth2: the provider's authorization endpoint (https), where people sign in."
    )
    oauth_token_url: str = setting("", "oauth2: the provider's token endpoint (https).")
    oauth_userinfo_url: str = setting(
        "", "oauth2: the provider's userinfo endpoint (https), which names the user."
    )
    oauth_client_id: str = setting("", "The client id the provider gave this hub.")
    oauth_client_secret: str = setting(
        "", "The client secret the provider gave this hub.", secret=True
    )
    oauth_scopes: list[str] = setting(
        ["openid", "profile", "email"], "Scopes asked for (add the one that brings groups)."
    )
    oauth_callback_url: str = setting(
        "", "Registered at the provider (default <public URL>/hub/oauth_callback)."
    )
    username_claim: str = setting(
        "preferred_username", "The claim that names the user (normalised like every name)."
    )
    oauth_subject_claim: str = setting(
        "",
        "oauth2: the userinfo claim that is the user's stable id, bound to the name at the "
        "first login (empty: sub, else id as GitHub's). oidc always uses sub.",
    )
    groups_claim: str = setting(
        "groups", "The claim that lists the user's groups (id token or userinfo)."
    )
    oauth_ca_file: str = setting(
        "", "CA certificates (PEM) that sign the provider's (empty: the system's)."
    )
    oauth_timeout: float = setting(10.0, "Seconds to wait for the provider's answers.")
    # Auth state (README, Authentication).
    crypt_key: str = setting(
        "",
        "Keys that encrypt auth state, `;`-separated (32 bytes, hex or base64 each): the first "
        "encrypts, all decrypt. Empty: no auth state is kept.",
        secret=True,
    )
    auth_refresh_age: float = setting(
        300.0,
        "Seconds after which a login's auth state is refreshed, with its groups, before a "
        "spawn and at the next request of its cookie or token (0: never).",
    )
    ldap_timeout: float = setting(10.0, "Seconds to connect to and wait for the LDAP server.")
    admin_users: list[str] = setting([], "Names that are admins (created at start-up).")
    admin_access: bool = setting(
        False, "Admins may open other users' servers (the access:servers scope), as JupyterHub."
    )
    services: list[dict[str, Any]] = setting(
        [],
        'Services (JupyterHub\'s): [{"name", "api_token", "admin", "scopes", "url", "command", '
        '"environment", "oauth_client_id", "oauth_redirect_uri", "oauth_client_allowed_scopes", '
        '"oauth_no_confirm", "info", "display"}]; only name and api_token are required (a '
        "managed one may leave api_token out: the hub derives one). With a `url` routed at "
        "/services/<name>/; with a `command` started by `flaskhub run`.",
        secret=True,
    )
    load_roles: list[dict[str, Any]] = setting(
        [],
        'Roles (JupyterHub\'s): [{"name", "description", "scopes", "users", "groups", '
        '"services"}]; members are exactly those listed (applied at start-up).',
    )
    spawner: str = setting(
        "local",
        "`local` (as root: each user's own system account), `simple` (the hub's account), "
        "`docker` (a container each), `swarm` (a Swarm service each), or a dotted path "
        "`module:Class`.",
    )
    spawner_cmd: list[str] = setting(
        ["flaskhub", "singleuser"], "Command that starts a user's server."
    )
    system_user_template: str = setting(
        "flaskhub-{username}",
        "The system account of a user's servers (local spawner, hub as root); the prefix "
        "keeps users off the machine's own accounts.",
    )
    system_users_allowed: list[str] = setting(
        [],
        "Existing accounts that may run servers although their uid is outside login.defs' "
        "UID_MIN..UID_MAX, they have no login shell, or they are in a group that can act as "
        "root (sudo, docker...); never root.",
    )
    create_system_users: bool = setting(
        False, "Create a missing system account (useradd) at a user's first spawn."
    )
    spawn_options: list[dict[str, Any]] = setting(
        [],
        'The form at /hub/spawn: fields `{"name", "label", "choices", "default"}`; the '
        "choices become the server's `user_options` (empty: no form).",
    )
    workers: int = setting(1, "gunicorn worker processes.")
    slow_spawn_timeout: float = setting(10.0, "Seconds a request waits for a spawn before 202.")
    start_timeout: float = setting(60.0, "Seconds a spawner may take to start (then it fails).")
    http_timeout: float = setting(30.0, "Seconds a started server may take to answer HTTP.")
    poll_interval: float = setting(30.0, "Seconds between polls of running servers.")
    concurrent_spawn_limit: int = setting(100, "Spawns pending at once (0 = no limit).")
    active_server_limit: int = setting(0, "Servers active at once (0 = no limit).")
    implicit_spawn: bool = setting(True, "Visiting /hub/user/<name>/ starts a stopped server.")
    redirect_to_server: bool = setting(
        True,
        "After login (without `next`) and at /hub/, a user goes to their server, started "
        "if it is not running (JupyterHub's); false: to /hub/home.",
    )
    allow_named_servers: bool = setting(False, "Users may have named servers besides their own.")
    named_server_limit_per_user: int = setting(0, "Named servers a user may have (0 = no limit).")
    headers: dict[str, str] = setting(
        {}, "Extra response headers; override defaults case-insensitively."
    )
    cleanup_servers: bool = setting(True, "`flaskhub run` stops user servers when it exits.")
    api_version: str = setting(
        JUPYTERHUB_API_VERSION, "JupyterHub API version implemented (X-JupyterHub-Version)."
    )
    log_level: str = setting(
        "INFO", "Logging level of the hub; DEBUG and INFO also log a line per request."
    )
    authenticate_prometheus: bool = setting(True, "/hub/metrics needs admin or read:metrics.")
    metrics_prefix: str = setting("jupyterhub", "Prefix of every metric name.")
    spawn_duration_buckets: list[float] = setting(
        [0.5, 1, 2.5, 5, 10, 15, 30, 60, 120, 180, 300, 600],
        "Buckets (seconds) of the spawn duration histogram; +Inf is added.",
    )
    login_failure_limit: int = setting(
        10, "Failed logins for a name or from an address before 429 (0 = no limit)."
    )
    login_failure_window: float = setting(
        300.0, "Seconds in which login_failure_limit counts; then logins work again."
    )
    subdomain_host: str = setting(
        "",
        "The hub's own origin, e.g. https://hub.example.org: each user's servers then get "
        "an origin of their own, https://<user>.hub.example.org (README: Security); {port} "
        "in it is the public port (setting port), e.g. http://localhost:{port}.",
    )
    cookie_max_age_days: float = setting(14.0, "Days a login lasts (the login cookie's age).")
    cookie_secure: bool = setting(
        False, "Send the login cookie only over HTTPS (always so when the proxy says HTTPS)."
    )
    keep_user_files: bool = setting(
        True, "Keep a deleted user's files (under data_dir/home/<storage id>); false removes them."
    )
    max_body_size: int = setting(
        4 * 1024 * 1024, "Largest request body the hub reads, in bytes (larger: 413)."
    )
    # The docker and swarm spawners (spawner = "docker", "swarm"); README, Containers.
    hub_connect_ip: str = setting(
        "",
        "Address user servers and the proxy reach the hub at (default hub_ip; docker: the "
        "network gateway).",
    )
    server_hub_url: str = setting(
        "",
        "The hub's origin as user servers reach it, e.g. through the proxy (JupyterHub's "
        "Spawner.hub_connect_url; default: hub_connect_ip's, or the spawner's own).",
    )
    docker_image: str = setting(
        f"flaskhub/singleuser:{__version__}", "Image of user containers (images/build)."
    )
    docker_cmd: list[str] = setting([], "Command of user containers (empty: the image's CMD).")
    docker_prefix: str = setting(
        "",
        "Start of container, volume and network names; the hub's label value (default: the "
        "name of the hub's compose project where it runs in one, else flaskhub).",
    )
    docker_network: str = setting(
        "",
        "Network of user containers (default: the network `users` of the hub's compose "
        "project where it runs in one that has it, else one named docker_prefix, created "
        "if missing).",
    )
    docker_attach: list[str] = setting(
        [],
        "Containers that must reach user servers (docker spawner), when they run in containers: "
        "a name or id, or service:<name> for a service of the hub's compose project. Set: each "
        "server gets a network of its own that only these join, instead of docker_network.",
    )
    docker_server_subnets: str = setting(
        "10.213.0.0/16",
        "Addresses of servers' own networks (docker_attach): each takes a /28 of this range.",
    )
    docker_home: str = setting(
        "/home/jovyan", "Where the user's volume (<docker_prefix>-home-<storage id>) is mounted."
    )
    docker_volumes: dict[str, str] = setting(
        {}, 'Extra mounts {"volume or /host/path": "/path[:ro]"}; {username}, {storage_id} filled.'
    )
    docker_env: dict[str, str] = setting(
        {}, "Extra environment of user containers (the JUPYTERHUB_* variables win)."
    )
    docker_port: int = setting(8888, "Port the server listens on inside its container.")
    docker_remove: bool = setting(
        True, "Remove a container when its server stops (false: kept until the next start)."
    )
    mem_limit: str = setting(
        "", "Memory limit of a user container: bytes or 512m, 2g (empty: none)."
    )
    cpu_limit: float = setting(0.0, "CPUs a user container may use, e.g. 1.5 (0: no limit).")
    pids_limit: int = setting(
        1024, "Processes and threads a user container may run at once (0 or -1: no limit)."
    )
    server_nice: int = setting(
        10,
        "How far below the hub and CHP user servers get the CPU: their nice value (0-19; "
        "containers: the matching CPU weight). 0: the same as the hub.",
    )
    server_cgroup: str = setting(
        "flaskhub-servers",
        "The control group all local servers run in, weighted together as one process at "
        "server_nice, beside the hub's; Docker containers: their parent group on the "
        "engine's host, weighted as one container (empty: none, nice values alone).",
    )
    mem_guarantee: str = setting(
        "", "Memory reserved for a user's service (swarm): bytes or 512m (empty: none)."
    )
    cpu_guarantee: float = setting(0.0, "CPUs reserved for a user's service (swarm; 0: none).")
    swarm_placement: list[str] = setting(
        [], 'Placement constraints of user services, e.g. ["node.labels.users==true"].'
    )
    swarm_address: str = setting(
        "docker_gwbridge",
        "Which address of a task the hub and CHP use: docker_gwbridge (one node), published "
        "(its node's address and the server port published there; several nodes) or network.",
    )
    swarm_proxy_port: int = setting(
        0,
        'swarm_address = "published": the proxy\'s port on every node, through which each '
        "server reaches the hub on its own node's host (0: port).",
    )
    swarm_volume_driver: str = setting(
        "", "Volume driver of the home volume of user services (empty: local, on each node)."
    )

    @property
    def hub_url(self) -> str:
        return f"http://{url_host(self.hub_ip)}:{self.hub_port}"

    @property
    def hub_connect_url(self) -> str:
        """The hub as others reach it: the proxy's route to it, user servers' API URL."""
        return (
            f"http://{url_host(self.hub_connect_ip)}:{self.hub_port}"
            if self.hub_connect_ip
            else self.hub_url
        )

    @property
    def proxy_target(self) -> str:
        """Where the proxy sends everything that is not a user's server: the hub."""
        if self.hub_socket:
            return f"http+unix://{quote(self.hub_socket, safe='')}"
        return self.hub_connect_url

    @property
    def public_url(self) -> str:
        """Where people reach the hub: its own origin with per-user origins."""
        if self.subdomain_host:
            return self.subdomain_host.rstrip("/")
        return f"http://{url_host(self.ip)}:{self.port}"


@dataclass(frozen=True)
class Setting:
    """One row of the settings table as read from a field of Settings."""

    name: str
    type: type  # what a value must be an instance of: str, int, float, bool, list, dict
    help: str

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()


def _rows() -> tuple[Setting, ...]:
    hints = get_type_hints(Settings)
    return tuple(
        Setting(
            name=f.name,
            type=get_origin(hints[f.name]) or hints[f.name],
            help=f.metadata["help"],
        )
        for f in fields(Settings)
    )


SETTINGS = _rows()
BY_NAME = {s.name: s for s in SETTINGS}
# The secret settings (kept out of the settings' repr): each may also come from a file
# named by FLASKHUB_<NAME>_FILE, e.g. a Docker secret under /run/secrets.
SECRET_NAMES = frozenset(f.name for f in fields(Settings) if not f.repr)
FILE_SUFFIX = "_file"


JSON_EXAMPLES: dict[type, str] = {list: '["alice", "bob"]', dict: '{"name": "value"}'}


def coerce(row: Setting, value: Any) -> Any:
    """Check and convert one value to its setting's type, or raise ConfigError."""
    kind = row.type
    # Before JSON, which would turn "1" and "0" into ints that are not bools.
    if kind is bool and isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
        value = value.lower() in ("true", "1")
    if isinstance(value, str) and kind is not str:
        try:
            value = json.loads(value)
        except ValueError:
            pass
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if kind is str and isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        # A list or table in an environment variable is JSON: `alice` is not, `["alice"]` is.
        example = JSON_EXAMPLES.get(kind) if isinstance(value, str) else None
        hint = f" (written as JSON, such as {example})" if example else ""
        raise ConfigError(
            f"setting {row.name!r} ({row.env}) must be {kind.__name__}, got {value!r}{hint}"
        )
    if isinstance(value, int | float) and value < (-1 if row.name in MINUS_ONE_OK else 0):
        floor = "below -1 (no limit)" if row.name in MINUS_ONE_OK else "negative"
        raise ConfigError(f"setting {row.name!r} must not be {floor}, got {value!r}")
    return value
