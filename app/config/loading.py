"""Where settings come from, and the Flask app's view of them.

Sources, later wins: defaults, a TOML file (``flaskhub.toml`` in the working
directory, or the file named by ``--config`` / ``FLASKHUB_CONFIG_FILE``),
environment variables ``FLASKHUB_<KEY>`` (parsed as JSON where they parse),
then explicit overrides (tests). An unknown key or a bad value stops start-up
with a message naming the key.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import tempfile
import tomllib
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.config.checks import validate
from app.config.table import (
    BY_NAME,
    CONFIG_FILE_ENV,
    DEFAULT_CONFIG_FILE,
    ENV_PREFIX,
    FILE_SUFFIX,
    MAX_SOCKET_PATH,
    PORT_FIELD,
    SECRET_NAMES,
    SETTINGS,
    ConfigError,
    Settings,
    coerce,
)

if TYPE_CHECKING:
    # Not at run time: gunicorn's arbiter reads settings without loading Flask.
    from flask import Flask


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
            secret = name.removesuffix(FILE_SUFFIX)
            if name not in BY_NAME and secret in SECRET_NAMES:
                name, value = secret, _read_secret_file(key, value)
            elif name not in BY_NAME:
                raise ConfigError(f"unknown setting {key}: see the settings table in the README")
            raw[name] = value
    for name, value in (overrides or {}).items():
        if name not in BY_NAME:
            raise ConfigError(f"unknown setting {name!r}")
        raw[name] = value
    # In table order, so that of several bad values the same one is always named.
    settings = Settings(**{s.name: coerce(s, raw[s.name]) for s in SETTINGS if s.name in raw})
    # Before the checks, which see the origin as it is used.
    settings = replace(settings, subdomain_host=with_port(settings.subdomain_host, settings.port))
    validate(settings)
    data_dir = str(Path(settings.data_dir).expanduser().resolve())
    proxy_api_urls = settings.proxy_api_urls or [
        settings.proxy_api_url or f"http://127.0.0.1:{settings.proxy_api_port}"
    ]
    return replace(
        settings,
        data_dir=data_dir,
        hub_socket=_hub_socket(settings, data_dir),
        db_url=_db_url(settings.db_url, data_dir),
        proxy_api_url=proxy_api_urls[0],
        proxy_api_urls=proxy_api_urls,
        proxy_auth_token=settings.proxy_auth_token or environ.get("CONFIGPROXY_AUTH_TOKEN", ""),
    )


def with_port(subdomain_host: str, port: int) -> str:
    """subdomain_host with {port} filled in: one file can serve stacks on several ports."""
    return subdomain_host.replace(PORT_FIELD, str(port))


def _read_secret_file(variable: str, path: str) -> str:
    """A secret from the file variable names (its one line, without the line's end)."""
    try:
        return Path(path).read_text().rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{variable}: cannot read the secret from {path}: {e}") from None


def _hub_socket(settings: Settings, data_dir: str) -> str:
    """The hub's Unix socket for the proxy: in data_dir (0700) when the hub starts CHP."""
    if settings.hub_socket:
        path = str(Path(settings.hub_socket).expanduser().resolve())
    elif settings.proxy_auto_start:
        path = f"{data_dir}/hub.sock"
    else:
        return ""
    if len(path.encode()) > MAX_SOCKET_PATH:
        raise ConfigError(
            f"setting 'hub_socket': {path} is longer than a Unix socket path may be "
            f"({MAX_SOCKET_PATH} bytes): set FLASKHUB_HUB_SOCKET to a shorter path in a "
            "directory only the hub's account may enter"
        )
    return path


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


def persistent_secret(configured: str, path: Path) -> str:
    """The configured secret, else the one kept in the file at path (created 0600 on first use).

    Several workers may start at once: the new secret is written to a file of its own and
    linked into place, so no one ever reads a file that is created but not yet written."""
    if configured:
        return configured
    if not path.exists():
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")  # 0600
        try:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process linked its secret first: use that one
        finally:
            os.unlink(tmp)
    if path.stat().st_mode & 0o077:
        raise ConfigError(
            f"{path} can be read by other users: run `chmod 600 {path}` "
            "(and make a new secret if they may have read it)"
        )
    return path.read_text().strip()


def check_data_dir(settings: Settings) -> None:
    """Create data_dir (0700: only the hub's account may enter) and prove it is writable,
    or raise ConfigError saying what to do."""
    path = Path(settings.data_dir)
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        if path.stat().st_mode & 0o077:
            path.chmod(0o700)
        # A probe of this process's own: workers starting together check at the same time.
        with tempfile.TemporaryFile(dir=path) as probe:
            probe.write(b"ok")
    except OSError as e:
        raise ConfigError(
            f"data_dir {path} is not writable ({e.strerror}): choose another with "
            f"FLASKHUB_DATA_DIR or fix its permissions"
        ) from None


def resolve_secrets(settings: Settings) -> Settings:
    """Check data_dir and fill in the cookie secret and proxy token kept there when unset."""
    check_data_dir(settings)
    data_dir = Path(settings.data_dir)
    cookie_secret = persistent_secret(settings.cookie_secret, data_dir / "cookie_secret")
    return replace(
        settings,
        cookie_secret=cookie_secret,
        proxy_auth_token=persistent_secret(
            settings.proxy_auth_token, data_dir / "proxy_auth_token"
        ),
        services=[_with_api_token(service, cookie_secret) for service in settings.services],
    )


def _with_api_token(service: dict[str, Any], cookie_secret: str) -> dict[str, Any]:
    """A managed service declared without `api_token` gets one, as in JupyterHub.

    JupyterHub makes a new one at each start; this one is derived from the cookie secret
    (HMAC), so it is the same in every worker and replica and after a restart, and there is
    no new secret to keep: whoever could read the cookie secret could act as anyone already.
    """
    if service.get("api_token") or not service.get("command"):
        return service
    message = f"flaskhub managed service token\0{service['name']}".encode()
    token = hmac.new(cookie_secret.encode(), message, hashlib.sha256).hexdigest()[:32]
    return {**service, "api_token": token}


def init_app(app: Flask, overrides: dict[str, Any] | None = None) -> None:
    """Load settings into app.config['FLASKHUB'] and set Flask's own keys from them."""
    settings = resolve_secrets(load(overrides=overrides))
    app.config["FLASKHUB"] = settings
    app.config["SECRET_KEY"] = settings.cookie_secret
    app.config.update(
        **_login_cookie(settings),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=timedelta(days=settings.cookie_max_age_days),
        # Werkzeug refuses a longer body (413) before anything reads it.
        MAX_CONTENT_LENGTH=settings.max_body_size,
        JSON_SORT_KEYS=False,
    )


def _login_cookie(settings: Settings) -> dict[str, Any]:
    """The login cookie's name, path and Secure flag.

    With per-user origins over HTTPS the cookie is `__Host-` prefixed: browsers accept
    such a cookie only from the hub's own host, so a server on <user>.<hub host> cannot
    plant a cookie of that name for the hub (cookie tossing: a cookie it sets with
    Domain=<hub host> would otherwise log its visitors in as its owner). The prefix
    requires Path=/ and Secure; the hub's host serves no user's server then.
    """
    if settings.subdomain_host.startswith("https://"):
        return {
            "SESSION_COOKIE_NAME": "__Host-flaskhub-session",
            "SESSION_COOKIE_PATH": "/",
            "SESSION_COOKIE_SECURE": True,
        }
    return {
        "SESSION_COOKIE_NAME": "flaskhub-session",
        # In path mode the hub's cookie must never reach user servers under /user/.
        "SESSION_COOKIE_PATH": "/hub/",
        "SESSION_COOKIE_SECURE": settings.cookie_secure,
    }


def get_settings(app: Flask) -> Settings:
    """The settings of an app built by create_app."""
    settings: Settings = app.config["FLASKHUB"]
    return settings


def current_settings() -> Settings:
    """The settings of the app handling the current request (or in the current app context)."""
    from flask import current_app

    return get_settings(current_app)
