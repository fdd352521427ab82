"""The one settings table: name, type, default, environment variable, validation.

Sources, later wins: defaults, a TOML file (``flaskhub.toml`` in the working
directory, or the file named by ``--config`` / ``FLASKHUB_CONFIG_FILE``),
environment variables ``FLASKHUB_<KEY>`` (parsed as JSON where they parse),
then explicit overrides (tests). An unknown key or a bad value stops start-up
with a message naming the key.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Flask

ENV_PREFIX = "FLASKHUB_"
CONFIG_FILE_ENV = "FLASKHUB_CONFIG_FILE"
DEFAULT_CONFIG_FILE = "flaskhub.toml"
METRIC_NAME_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


class ConfigError(ValueError):
    """A setting is unknown or has a value of the wrong kind; the message names it."""


@dataclass(frozen=True)
class Setting:
    """One row of the settings table."""

    name: str
    type: type
    default: Any
    help: str

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()


SETTINGS: tuple[Setting, ...] = (
    Setting("ip", str, "127.0.0.1", "Public address of the proxy (what people open)."),
    Setting("port", int, 8000, "Public port of the proxy."),
    Setting("hub_ip", str, "127.0.0.1", "Address the hub (gunicorn) listens on."),
    Setting("hub_port", int, 8081, "Port the hub listens on."),
    Setting("proxy_api_port", int, 8001, "Port of CHP's REST API (on 127.0.0.1)."),
    Setting(
        "proxy_api_url", str, "", "CHP's REST API URL when external (default from proxy_api_port)."
    ),
    Setting("proxy_auto_start", bool, True, "Start and supervise CHP with `flaskhub run`."),
    Setting(
        "proxy_auth_token",
        str,
        "",
        "Token for CHP's API (else CONFIGPROXY_AUTH_TOKEN, else generated).",
    ),
    Setting("db_url", str, "", "SQLAlchemy URL (default sqlite:///<data_dir>/flaskhub.sqlite)."),
    Setting("data_dir", str, "./data", "Where the database, secrets and user directories live."),
    Setting(
        "cookie_secret",
        str,
        "",
        "Secret that signs login cookies (else generated, kept in data_dir).",
    ),
    Setting(
        "authenticator", str, "dummy", "`dummy` (any name) or `password` (accounts with passwords)."
    ),
    Setting("dummy_password", str, "", "With the dummy authenticator: the one password accepted."),
    Setting("admin_users", list, [], "Names that are admins (created at start-up)."),
    Setting(
        "services",
        list,
        [],
        'Tokens for tools: [{"name", "api_token", "admin", "scopes", "url"}] (last two optional).',
    ),
    Setting("spawner", str, "local", "`local` or a dotted path `module:Class`."),
    Setting(
        "spawner_cmd", list, ["flaskhub", "singleuser"], "Command that starts a user's server."
    ),
    Setting("workers", int, 1, "gunicorn worker processes."),
    Setting("slow_spawn_timeout", float, 10.0, "Seconds a request waits for a spawn before 202."),
    Setting("start_timeout", float, 60.0, "Seconds a spawner may take to start (then it fails)."),
    Setting("http_timeout", float, 30.0, "Seconds a started server may take to answer HTTP."),
    Setting("poll_interval", float, 30.0, "Seconds between polls of running servers."),
    Setting("concurrent_spawn_limit", int, 100, "Spawns pending at once (0 = no limit)."),
    Setting("active_server_limit", int, 0, "Servers active at once (0 = no limit)."),
    Setting("implicit_spawn", bool, True, "Visiting /hub/user/<name>/ starts a stopped server."),
    Setting("allow_named_servers", bool, False, "Users may have named servers besides their own."),
    Setting("named_server_limit_per_user", int, 0, "Named servers a user may have (0 = no limit)."),
    Setting("headers", dict, {}, "Extra response headers; override defaults case-insensitively."),
    Setting("cleanup_servers", bool, True, "`flaskhub run` stops user servers when it exits."),
    Setting(
        "api_version", str, "5.4.0", "JupyterHub API version implemented (X-JupyterHub-Version)."
    ),
    Setting("log_level", str, "INFO", "Logging level of the hub."),
    Setting("authenticate_prometheus", bool, True, "/hub/metrics needs admin or read:metrics."),
    Setting("metrics_prefix", str, "jupyterhub", "Prefix of every metric name."),
    Setting(
        "spawn_duration_buckets",
        list,
        [0.5, 1, 2.5, 5, 10, 15, 30, 60, 120, 180, 300, 600],
        "Buckets (seconds) of the spawn duration histogram; +Inf is added.",
    ),
)
BY_NAME = {s.name: s for s in SETTINGS}


@dataclass(frozen=True)
class Settings:
    """Validated settings; attribute per row of SETTINGS, plus resolved secrets."""

    values: dict[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def hub_url(self) -> str:
        return f"http://{_host(self.hub_ip)}:{self.hub_port}"

    @property
    def public_url(self) -> str:
        return f"http://{_host(self.ip)}:{self.port}"


def _host(ip: str) -> str:
    """Address as used in a URL: wildcard binds are reached on loopback."""
    if ip in ("", "0.0.0.0"):
        return "127.0.0.1"
    if ip == "::":
        return "[::1]"
    return f"[{ip}]" if ":" in ip else ip


def coerce(setting: Setting, value: Any) -> Any:
    """Check and convert one value to its setting's type, or raise ConfigError."""
    kind = setting.type
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
            f"setting {setting.name!r} ({setting.env}) must be {kind.__name__}, got {value!r}"
        )
    if isinstance(value, int | float) and value < 0:
        raise ConfigError(f"setting {setting.name!r} must not be negative, got {value!r}")
    return value


def load(
    config_file: str | None = None,
    environ: dict[str, str] | None = None,
    overrides: dict[str, Any] | None = None,
) -> Settings:
    """Read defaults, the TOML file, the environment and overrides; validate."""
    environ = dict(os.environ if environ is None else environ)
    raw: dict[str, Any] = {s.name: s.default for s in SETTINGS}
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
    values = {name: coerce(BY_NAME[name], value) for name, value in raw.items()}
    _validate(values)
    values["data_dir"] = str(Path(values["data_dir"]).expanduser().resolve())
    values["db_url"] = _db_url(values["db_url"], values["data_dir"])
    if not values["proxy_api_url"]:
        values["proxy_api_url"] = f"http://127.0.0.1:{values['proxy_api_port']}"
    if not values["proxy_auth_token"]:
        values["proxy_auth_token"] = environ.get("CONFIGPROXY_AUTH_TOKEN", "")
    return Settings(values)


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


def _validate(values: dict[str, Any]) -> None:
    if values["authenticator"] not in ("dummy", "password"):
        raise ConfigError("setting 'authenticator' must be 'dummy' or 'password'")
    for name in ("port", "hub_port", "proxy_api_port"):
        if not 0 < values[name] < 65536:
            raise ConfigError(f"setting {name!r} must be a port number, got {values[name]}")
    if values["workers"] < 1:
        raise ConfigError("setting 'workers' must be at least 1")
    if not values["spawner_cmd"] or not all(isinstance(a, str) for a in values["spawner_cmd"]):
        raise ConfigError("setting 'spawner_cmd' must be a non-empty list of strings")
    for service in values["services"]:
        required = ("name", "api_token")
        if not isinstance(service, dict) or not all(
            isinstance(service.get(key), str) and service[key] for key in required
        ):
            raise ConfigError('each of \'services\' needs {"name": ..., "api_token": ...}')
        # A string such as "false" would be truthy: an admin by mistake.
        if not isinstance(service.get("admin", False), bool):
            raise ConfigError(f"setting 'services': 'admin' of {service['name']!r} must be a bool")
        _validate_service_extras(service)
    for name, value in values["headers"].items():
        if not isinstance(value, str):
            raise ConfigError(f"setting 'headers': value of {name!r} must be a string")
        if "\n" in name + value or "\r" in name + value:
            # Werkzeug refuses them at response time: every response would be a 500.
            raise ConfigError(f"setting 'headers': {name!r} must not contain line breaks")
    for name in values["admin_users"]:
        if not isinstance(name, str):
            raise ConfigError("setting 'admin_users' must be a list of names")
    if not METRIC_NAME_RE.fullmatch(values["metrics_prefix"]):
        raise ConfigError(
            "setting 'metrics_prefix' must be letters, digits and _, not first a digit"
        )
    buckets = values["spawn_duration_buckets"]
    numbers = all(isinstance(b, int | float) and not isinstance(b, bool) for b in buckets)
    if not buckets or not numbers or buckets[0] <= 0 or buckets != sorted(set(buckets)):
        raise ConfigError(
            f"setting 'spawn_duration_buckets' must be ascending positive numbers, got {buckets!r}"
        )


def _validate_service_extras(service: dict[str, Any]) -> None:
    """A service's optional `scopes` (JupyterHub's names) and `url`."""
    from app.auth.scopes import ScopeError, check_scopes

    name, scopes = service["name"], service.get("scopes", [])
    if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
        raise ConfigError(f"setting 'services': 'scopes' of {name!r} must be a list of strings")
    try:
        check_scopes(scopes)
    except ScopeError as e:
        raise ConfigError(f"setting 'services': {e} (service {name!r})") from None
    if not isinstance(service.get("url", ""), str):
        raise ConfigError(f"setting 'services': 'url' of {name!r} must be a string")


def persistent_secret(settings: Settings, name: str, filename: str) -> str:
    """The configured secret, else one kept in data_dir (created 0600 on first use)."""
    configured = settings.values.get(name)
    if configured:
        return str(configured)
    path = Path(settings.data_dir) / filename
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32))
    return path.read_text().strip()


def check_data_dir(settings: Settings) -> None:
    """Create data_dir and prove it is writable, or raise ConfigError saying what to do."""
    path = Path(settings.data_dir)
    try:
        path.mkdir(parents=True, exist_ok=True)
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
    values = dict(settings.values)
    values["cookie_secret"] = persistent_secret(settings, "cookie_secret", "cookie_secret")
    values["proxy_auth_token"] = persistent_secret(settings, "proxy_auth_token", "proxy_auth_token")
    return Settings(values)


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
        JSON_SORT_KEYS=False,
    )


def get_settings(app: Flask) -> Settings:
    """The settings of an app built by create_app."""
    return app.config["FLASKHUB"]
