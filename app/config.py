"""The one settings table, validation, and where settings come from.

The table is the dataclass Settings: each field names a setting, its type, its
default and its help text; its environment variable is FLASKHUB_<NAME>.
SETTINGS and BY_NAME read the same rows from it.

Sources, later wins: defaults, a TOML file (``flaskhub.toml`` in the working
directory, or the file named by ``--config`` / ``FLASKHUB_CONFIG_FILE``),
environment variables ``FLASKHUB_<KEY>`` (parsed as JSON where they parse),
then explicit overrides (tests). An unknown key or a bad value stops start-up
with a message naming the key.
"""

from __future__ import annotations

import copy
import json
import os
import re
import secrets
import tomllib
from dataclasses import dataclass, field, fields, replace
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_origin, get_type_hints

from app.spawn_options import problem_with as spawn_options_problem
from app.version import __version__

if TYPE_CHECKING:
    # Not at run time: gunicorn's arbiter reads settings without loading Flask.
    from flask import Flask

ENV_PREFIX = "FLASKHUB_"
CONFIG_FILE_ENV = "FLASKHUB_CONFIG_FILE"
DEFAULT_CONFIG_FILE = "flaskhub.toml"
METRIC_NAME_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
DOCKER_NAME_RE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")
# A swarm service's name is one DNS label (swarmkit refuses '.' and more than 63 characters).
SERVICE_NAME_RE = re.compile(r"[a-zA-Z0-9](?:[-_]*[a-zA-Z0-9]+)*")
SWARM_ADDRESSES = ("docker_gwbridge", "network")
# Leaves room in a service name for the user and server.
MAX_SWARM_PREFIX = 40
MEM_LIMIT_RE = re.compile(r"[0-9]+[bkmg]?", re.IGNORECASE)
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")
# Authenticators whose users come from an identity provider: they must say who may log in.
PROVIDER_AUTHENTICATORS: tuple[str, ...] = ("ldap", "oidc", "oauth2")
AUTHENTICATOR_NAMES = ("dummy", "password", *PROVIDER_AUTHENTICATORS)


class ConfigError(ValueError):
    """A setting is unknown or has a value of the wrong kind; the message names it."""


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
    proxy_auto_start: bool = setting(True, "Start and supervise CHP with `flaskhub run`.")
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
    ldap_bind_dn: str = setting("", "The service account that searches (empty: anonymous search).")
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
        300.0, "Seconds after which a login's auth state is refreshed before a spawn (0: never)."
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
        '"oauth_no_confirm", "info", "display"}]; only name and api_token are required. With a '
        "`url` routed at /services/<name>/; with a `command` started by `flaskhub run`.",
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
        "{username}", "The system account of a user's servers (local spawner, hub as root)."
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
        True, "A logged-in user with a running server who opens /hub/ goes to it."
    )
    allow_named_servers: bool = setting(False, "Users may have named servers besides their own.")
    named_server_limit_per_user: int = setting(0, "Named servers a user may have (0 = no limit).")
    headers: dict[str, str] = setting(
        {}, "Extra response headers; override defaults case-insensitively."
    )
    cleanup_servers: bool = setting(True, "`flaskhub run` stops user servers when it exits.")
    api_version: str = setting(
        "5.4.0", "JupyterHub API version implemented (X-JupyterHub-Version)."
    )
    log_level: str = setting("INFO", "Logging level of the hub.")
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
    docker_image: str = setting(
        f"flaskhub/singleuser:{__version__}", "Image of user containers (images/build)."
    )
    docker_cmd: list[str] = setting([], "Command of user containers (empty: the image's CMD).")
    docker_prefix: str = setting(
        "flaskhub", "Start of container, volume and network names; the hub's label value."
    )
    docker_network: str = setting(
        "", "Network of user containers (default: named docker_prefix, created if missing)."
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
    mem_guarantee: str = setting(
        "", "Memory reserved for a user's service (swarm): bytes or 512m (empty: none)."
    )
    cpu_guarantee: float = setting(0.0, "CPUs reserved for a user's service (swarm; 0: none).")
    swarm_placement: list[str] = setting(
        [], 'Placement constraints of user services, e.g. ["node.labels.users==true"].'
    )
    swarm_address: str = setting(
        "docker_gwbridge",
        "Which address of a task the hub and CHP use: docker_gwbridge or network.",
    )
    swarm_volume_driver: str = setting(
        "", "Volume driver of the home volume of user services (empty: local, on each node)."
    )

    @property
    def hub_url(self) -> str:
        return f"http://{_host(self.hub_ip)}:{self.hub_port}"

    @property
    def hub_connect_url(self) -> str:
        """The hub as others reach it: the proxy's route to it, user servers' API URL."""
        return (
            f"http://{_host(self.hub_connect_ip)}:{self.hub_port}"
            if self.hub_connect_ip
            else self.hub_url
        )

    @property
    def public_url(self) -> str:
        return f"http://{_host(self.ip)}:{self.port}"


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


def _host(ip: str) -> str:
    """Address as used in a URL: wildcard binds are reached on loopback."""
    if ip in ("", "0.0.0.0"):
        return "127.0.0.1"
    if ip == "::":
        return "[::1]"
    return f"[{ip}]" if ":" in ip else ip


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
        raise ConfigError(
            f"setting {row.name!r} ({row.env}) must be {kind.__name__}, got {value!r}"
        )
    if isinstance(value, int | float) and value < 0:
        raise ConfigError(f"setting {row.name!r} must not be negative, got {value!r}")
    return value


def load(
    config_file: str | None = None,
    environ: dict[str, str] | None = None,
    overrides: dict[str, Any] | None = None,
) -> Settings:
    """Read defaults, the TOML file, the environment and overrides; validate."""
    environ = dict(os.environ if environ is None else environ)
    raw: dict[str, Any] = {}
    path = config_file or environ.get(CONFIG_FILE_ENV)
    if path or Path(DEFAULT_CONFIG_FILE).exists():
        raw.update(_read_toml(Path(path or DEFAULT_CONFIG_FILE), required=bool(path)))
    for key, value in environ.items():
        if key.startswith(ENV_PREFIX) and key != CONFIG_FILE_ENV:
            name = key[len(ENV_PREFIX) :].lower()
            if name not in BY_NAME:
                raise ConfigError(f"unknown setting {key}: see the settings table in the README")
            raw[name] = value
    for name, value in (overrides or {}).items():
        if name not in BY_NAME:
            raise ConfigError(f"unknown setting {name!r}")
        raw[name] = value
    # In table order, so that of several bad values the same one is always named.
    settings = Settings(**{s.name: coerce(s, raw[s.name]) for s in SETTINGS if s.name in raw})
    _validate(settings)
    data_dir = str(Path(settings.data_dir).expanduser().resolve())
    return replace(
        settings,
        data_dir=data_dir,
        db_url=_db_url(settings.db_url, data_dir),
        proxy_api_url=settings.proxy_api_url or f"http://127.0.0.1:{settings.proxy_api_port}",
        proxy_auth_token=settings.proxy_auth_token or environ.get("CONFIGPROXY_AUTH_TOKEN", ""),
    )


def _db_url(url: str, data_dir: str) -> str:
    """The database URL: SQLite in data_dir by default; PostgreSQL through psycopg 3,
    the driver that cooperates with gevent (psycopg2 would block every greenlet)."""
    if not url:
        return f"sqlite:///{data_dir}/flaskhub.sqlite"
    scheme, sep, rest = url.partition("://")
    if scheme in ("postgresql", "postgres"):
        return f"postgresql+psycopg://{rest}"
    if scheme.startswith("postgresql+") and scheme != "postgresql+psycopg":
        raise ConfigError(
            f"setting 'db_url' uses the driver {scheme.partition('+')[2]!r}, which blocks "
            "gevent's workers: use postgresql+psycopg://"
        )
    return url


def _read_toml(path: Path, required: bool) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        if required:
            raise ConfigError(f"config file {path} does not exist") from None
        return {}
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {path} is not valid TOML: {e}") from None
    unknown = sorted(set(data) - set(BY_NAME))
    if unknown:
        raise ConfigError(f"unknown setting {unknown[0]!r} in {path}")
    return data


def _validate_template(template: str) -> None:
    """system_user_template must name the user, with no other field."""
    try:
        filled = template.format(username="x")
    except (KeyError, IndexError, ValueError):
        filled = ""
    if "{username}" not in template or not filled:
        raise ConfigError(
            "setting 'system_user_template' must contain {username} and no other {field}, "
            f"got {template!r}"
        )


def _validate_option_settings(declared: list[dict[str, Any]]) -> None:
    """A spawn option named like a setting must be one a server may choose, and each of
    its choices a good value of it."""
    from app.spawn_options import SERVER_SETTINGS

    for option in declared:
        name = option["name"]
        if name not in BY_NAME:
            continue
        if name not in SERVER_SETTINGS:
            raise ConfigError(
                f"setting 'spawn_options': {name!r} is a setting no server may choose "
                f"(those that may: {', '.join(SERVER_SETTINGS)})"
            )
        for choice in option["choices"]:
            try:
                coerce(BY_NAME[name], choice)
            except ConfigError as e:
                raise ConfigError(f"setting 'spawn_options': choice {choice!r}: {e}") from None


def _validate(settings: Settings) -> None:
    """Check what coerce cannot: ranges, choices, the items of lists and dicts."""
    if settings.authenticator not in AUTHENTICATOR_NAMES:
        raise ConfigError(
            f"setting 'authenticator' must be one of {', '.join(AUTHENTICATOR_NAMES)}"
        )
    _validate_access(settings)
    if settings.crypt_key:
        from app.crypt import parse_keys

        try:
            parse_keys(settings.crypt_key)
        except ValueError as e:
            raise ConfigError(f"setting 'crypt_key' (FLASKHUB_CRYPT_KEY): {e}") from None
    if settings.authenticator == "ldap":
        _validate_ldap(settings)
    if settings.authenticator == "oidc":
        _validate_oauth(settings, "oauth_issuer")
    if settings.authenticator == "oauth2":
        _validate_oauth(settings, "oauth_authorize_url", "oauth_token_url", "oauth_userinfo_url")
    for name in ("port", "hub_port", "proxy_api_port"):
        port = getattr(settings, name)
        if not 0 < port < 65536:
            raise ConfigError(f"setting {name!r} must be a port number, got {port}")
    if settings.workers < 1:
        raise ConfigError("setting 'workers' must be at least 1")
    cmd = settings.spawner_cmd
    if not cmd or not all(isinstance(a, str) for a in cmd):
        raise ConfigError("setting 'spawner_cmd' must be a non-empty list of strings")
    _validate_template(settings.system_user_template)
    problem = spawn_options_problem(settings.spawn_options)
    if problem:
        raise ConfigError(f"setting 'spawn_options': {problem}")
    _validate_option_settings(settings.spawn_options)
    _validate_services(settings.services)
    _validate_roles(settings)
    for name, value in settings.headers.items():
        if not isinstance(value, str):
            raise ConfigError(f"setting 'headers': value of {name!r} must be a string")
        if "\n" in name + value or "\r" in name + value:
            # Werkzeug refuses them at response time: every response would be a 500.
            raise ConfigError(f"setting 'headers': {name!r} must not contain line breaks")
    for name in settings.admin_users:
        if not isinstance(name, str):
            raise ConfigError("setting 'admin_users' must be a list of names")
    if not METRIC_NAME_RE.fullmatch(settings.metrics_prefix):
        raise ConfigError(
            "setting 'metrics_prefix' must be letters, digits and _, not first a digit"
        )
    if settings.cookie_max_age_days <= 0:
        raise ConfigError("setting 'cookie_max_age_days' must be more than 0")
    if settings.max_body_size < 1024:
        raise ConfigError(
            f"setting 'max_body_size' must be at least 1024 bytes, got {settings.max_body_size}"
        )
    buckets = settings.spawn_duration_buckets
    numbers = all(isinstance(b, int | float) and not isinstance(b, bool) for b in buckets)
    if not buckets or not numbers or buckets[0] <= 0 or buckets != sorted(set(buckets)):
        raise ConfigError(
            f"setting 'spawn_duration_buckets' must be ascending positive numbers, got {buckets!r}"
        )
    _validate_docker(settings)


def _validate_access(settings: Settings) -> None:
    """The lists of who may log in; a provider's hub must say who may (else nobody could)."""
    for name in ("allowed_users", "blocked_users", "allowed_groups", "admin_groups"):
        if not all(isinstance(v, str) and v.strip() for v in getattr(settings, name)):
            raise ConfigError(f"setting {name!r} must be a list of non-empty strings")
    allows = settings.allow_all or settings.allowed_users or settings.allowed_groups
    if settings.authenticator in PROVIDER_AUTHENTICATORS and not allows:
        raise ConfigError(
            f"with authenticator {settings.authenticator!r} nobody may log in: set "
            "'allowed_users' or 'allowed_groups', or 'allow_all' = true to let in everyone "
            "the provider accepts"
        )


def _validate_ldap(settings: Settings) -> None:
    """An LDAP URL that keeps passwords off the wire, and one way to find the user's DN."""
    scheme, _, rest = settings.ldap_url.partition("://")
    host = rest.split("/")[0].rpartition("@")[2].rsplit(":", 1)[0].strip("[]")
    if scheme not in ("ldap", "ldaps") or not host:
        raise ConfigError("setting 'ldap_url' must be ldaps://host[:port] or ldap://host[:port]")
    if scheme == "ldap" and not settings.ldap_start_tls and host not in LOOPBACK_HOSTS:
        raise ConfigError(
            "setting 'ldap_start_tls' may be false only for a server on loopback: passwords "
            f"would cross the network in clear to {host}; use ldaps:// or StartTLS"
        )
    templates = settings.ldap_bind_dn_template
    if bool(templates) == bool(settings.ldap_search_base):
        raise ConfigError(
            "set one of 'ldap_bind_dn_template' (direct bind) or 'ldap_search_base' "
            "(search-then-bind)"
        )
    for template in templates:
        if not isinstance(template, str) or "{username}" not in template:
            raise ConfigError("each of 'ldap_bind_dn_template' must contain {username}")
        _check_fields("ldap_bind_dn_template", template, "username")
    _check_fields("ldap_search_filter", settings.ldap_search_filter, "username")
    _check_fields("ldap_group_search_filter", settings.ldap_group_search_filter, "username", "dn")


def _validate_oauth(settings: Settings, *urls: str) -> None:
    """The provider's URLs (https), the client's credentials, the claims."""
    for name in urls:
        if not getattr(settings, name).startswith("https://"):
            raise ConfigError(f"setting {name!r} must be an https:// URL of the provider")
    for name in ("oauth_client_id", "oauth_client_secret", "username_claim"):
        if not getattr(settings, name):
            raise ConfigError(
                f"setting {name!r} must be set for authenticator {settings.authenticator!r}"
            )
    if not all(isinstance(s, str) and s for s in settings.oauth_scopes):
        raise ConfigError("setting 'oauth_scopes' must be a list of scope names")
    if settings.authenticator == "oidc" and "openid" not in settings.oauth_scopes:
        raise ConfigError("setting 'oauth_scopes' must contain 'openid' for authenticator 'oidc'")
    callback = settings.oauth_callback_url
    if callback and not callback.startswith(("https://", "http://")):
        raise ConfigError("setting 'oauth_callback_url' must be an http(s):// URL")


def _check_fields(name: str, template: str, *allowed: str) -> None:
    """A template may use only the named {fields}."""
    try:
        template.format(**dict.fromkeys(allowed, "x"))
    except (KeyError, IndexError, ValueError) as e:
        fields_ = ", ".join(f"{{{a}}}" for a in allowed)
        raise ConfigError(f"setting {name!r} may use only {fields_} ({e})") from None


def _validate_roles(settings: Settings) -> None:
    """Each `load_roles` entry: a valid name, known scopes, members of the right kinds."""
    from app.role_specs import check_role_specs

    try:
        check_role_specs(settings.load_roles, [s["name"] for s in settings.services])
    except ValueError as e:
        raise ConfigError(f"setting 'load_roles': {e}") from None


def _validate_services(services: list[dict[str, Any]]) -> None:
    """Each service: a name and a token, fields of the right types (a string such as
    "false" for `admin` would be truthy: an admin by mistake), known scopes, one each."""
    from app.scopes import ScopeError, check_scopes
    from app.services.specs import SpecError, spec_from

    names = set()
    for service in services:
        required = ("name", "api_token")
        if not isinstance(service, dict) or not all(
            isinstance(service.get(key), str) and service[key] for key in required
        ):
            raise ConfigError('each of \'services\' needs {"name": ..., "api_token": ...}')
        try:
            spec = spec_from(service)
            check_scopes([*service.get("scopes", []), *spec.oauth_client_allowed_scopes])
        except (SpecError, ScopeError) as e:
            raise ConfigError(f"setting 'services': {e} (service {service['name']!r})") from None
        if spec.name in names:
            raise ConfigError(f"setting 'services': {spec.name!r} is there twice")
        names.add(spec.name)
        if spec.managed and not spec.command[0]:
            raise ConfigError(f"setting 'services': 'command' of {spec.name!r} is empty")


def _validate_docker(settings: Settings) -> None:
    """The docker spawner's names, mounts, environment and limits."""
    for name in ("docker_prefix", "docker_network"):
        value = getattr(settings, name)
        if value and not DOCKER_NAME_RE.fullmatch(value):
            raise ConfigError(f"setting {name!r} must be letters, digits, _ . - (got {value!r})")
    if not all(isinstance(a, str) for a in settings.docker_cmd):
        raise ConfigError("setting 'docker_cmd' must be a list of strings")
    for name in ("docker_volumes", "docker_env"):
        if not all(isinstance(v, str) for v in getattr(settings, name).values()):
            raise ConfigError(f"setting {name!r} must map names to strings")
    if not 0 < settings.docker_port < 65536:
        raise ConfigError(
            f"setting 'docker_port' must be a port number, got {settings.docker_port}"
        )
    for name in ("mem_limit", "mem_guarantee"):
        value = getattr(settings, name)
        if value and not MEM_LIMIT_RE.fullmatch(value):
            raise ConfigError(
                f"setting {name!r} must be bytes or a number with b, k, m or g, got {value!r}"
            )
    _validate_swarm(settings)


def _validate_swarm(settings: Settings) -> None:
    """The swarm spawner's service names, placement and addresses."""
    prefix = settings.docker_prefix
    swarm = settings.spawner == "swarm"
    if swarm and not (SERVICE_NAME_RE.fullmatch(prefix) and len(prefix) <= MAX_SWARM_PREFIX):
        raise ConfigError(
            f"setting 'docker_prefix' must be at most {MAX_SWARM_PREFIX} letters and digits "
            f"joined by - or _ (swarm service names), got {prefix!r}"
        )
    if not all(isinstance(c, str) and ("==" in c or "!=" in c) for c in settings.swarm_placement):
        raise ConfigError(
            "setting 'swarm_placement' must be a list of constraints such as "
            f"'node.role==worker', got {settings.swarm_placement!r}"
        )
    if settings.swarm_address not in SWARM_ADDRESSES:
        raise ConfigError(
            f"setting 'swarm_address' must be one of {', '.join(SWARM_ADDRESSES)}, "
            f"got {settings.swarm_address!r}"
        )
    if swarm and settings.swarm_address == "network" and not settings.hub_connect_ip:
        raise ConfigError(
            "setting 'hub_connect_ip' must name the hub on docker_network when "
            "swarm_address = 'network' (e.g. its service name there)"
        )


def persistent_secret(configured: str, path: Path) -> str:
    """The configured secret, else the one kept in the file at path (created 0600 on first use)."""
    if configured:
        return configured
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if path.stat().st_mode & 0o077:
            raise ConfigError(
                f"{path} can be read by other users: run `chmod 600 {path}` "
                "(and make a new secret if they may have read it)"
            ) from None
        return path.read_text().strip()
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32))
    return path.read_text().strip()


def check_data_dir(settings: Settings) -> None:
    """Create data_dir (0700: only the hub's account may enter) and prove it is writable,
    or raise ConfigError saying what to do."""
    path = Path(settings.data_dir)
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        if path.stat().st_mode & 0o077:
            path.chmod(0o700)
        probe = path / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as e:
        raise ConfigError(
            f"data_dir {path} is not writable ({e.strerror}): choose another with "
            f"FLASKHUB_DATA_DIR or fix its permissions"
        ) from None


def resolve_secrets(settings: Settings) -> Settings:
    """Check data_dir and fill in the cookie secret and proxy token kept there when unset."""
    check_data_dir(settings)
    data_dir = Path(settings.data_dir)
    return replace(
        settings,
        cookie_secret=persistent_secret(settings.cookie_secret, data_dir / "cookie_secret"),
        proxy_auth_token=persistent_secret(
            settings.proxy_auth_token, data_dir / "proxy_auth_token"
        ),
    )


def init_app(app: Flask, overrides: dict[str, Any] | None = None) -> None:
    """Load settings into app.config['FLASKHUB'] and set Flask's own keys from them."""
    settings = resolve_secrets(load(overrides=overrides))
    app.config["FLASKHUB"] = settings
    app.config["SECRET_KEY"] = settings.cookie_secret
    app.config.update(
        SESSION_COOKIE_NAME="flaskhub-session",
        # The hub's cookie must never reach user servers under /user/.
        SESSION_COOKIE_PATH="/hub/",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.cookie_secure,
        PERMANENT_SESSION_LIFETIME=timedelta(days=settings.cookie_max_age_days),
        # Werkzeug refuses a longer body (413) before anything reads it.
        MAX_CONTENT_LENGTH=settings.max_body_size,
        JSON_SORT_KEYS=False,
    )


def get_settings(app: Flask) -> Settings:
    """The settings of an app built by create_app."""
    settings: Settings = app.config["FLASKHUB"]
    return settings


def current_settings() -> Settings:
    """The settings of the app handling the current request (or in the current app context)."""
    from flask import current_app

    return get_settings(current_app)
