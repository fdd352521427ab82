"""Settings of the single-user server, read from the environment the hub gives it."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

# The JupyterHub version whose single-user protocol this server implements; the hub reads it
# from the X-JupyterHub-Version header to choose features and to explain redirect loops.
JUPYTERHUB_VERSION = "6.1.1"

REQUIRED_VARIABLES = (
    "JUPYTERHUB_USER",
    "JUPYTERHUB_SERVICE_PREFIX",
    "JUPYTERHUB_API_URL",
    "JUPYTERHUB_API_TOKEN",
    "JUPYTERHUB_CLIENT_ID",
    "JUPYTERHUB_OAUTH_CALLBACK_URL",
)


class ConfigError(Exception):
    """The environment does not describe a usable server; the message names the variable."""


@dataclass(frozen=True)
class SingleUserSettings:
    """Everything the server needs to know, fixed at start."""

    user: str
    service_prefix: str
    api_url: str
    api_token: str
    client_id: str
    oauth_callback_url: str
    service_url: str = ""
    base_url: str = "/"
    hub_host: str = ""
    activity_url: str = ""
    server_name: str = ""
    version: str = JUPYTERHUB_VERSION
    listen_host: str = "127.0.0.1"
    listen_port: int = 0
    #: A token must carry one of these for the hub to let it use this server.
    access_scopes: tuple[str, ...] = ()

    @property
    def public_url(self) -> str:
        """Return the URL this server is reached at: the service URL unless --port changed it."""
        if self.service_url and urlsplit(self.service_url).port == self.listen_port:
            return self.service_url
        host = f"[{self.listen_host}]" if ":" in self.listen_host else self.listen_host
        return f"http://{host}:{self.listen_port}{self.service_prefix}"

    @property
    def hub_home_url(self) -> str:
        """Return the URL of the hub's home page."""
        return f"{self.hub_host}{self.base_url}hub/home"

    @property
    def authorize_url(self) -> str:
        """Return the hub's OAuth authorize endpoint (without the query)."""
        return f"{self.hub_host}{self.base_url}hub/api/oauth2/authorize"

    @property
    def callback_path(self) -> str:
        """Return the path on which this server receives the OAuth callback."""
        return urlsplit(self.oauth_callback_url).path


def settings_from_env(
    environ: Mapping[str, str], *, port: int | None = None, ip: str | None = None
) -> SingleUserSettings:
    """Build settings from JupyterHub's variables; `port`/`ip` come from the command line."""
    for name in REQUIRED_VARIABLES:
        if not environ.get(name):
            raise ConfigError(f"missing required environment variable {name}")
    service_url = environ.get("JUPYTERHUB_SERVICE_URL", "")
    url_host, url_port = _split_service_url(service_url)
    listen_port = port or _env_port(environ) or url_port
    if not listen_port:
        raise ConfigError(
            "missing required environment variable JUPYTERHUB_SERVICE_URL "
            "(with a port), or JUPYTERHUB_SERVICE_PORT, or --port"
        )
    return SingleUserSettings(
        user=environ["JUPYTERHUB_USER"],
        service_prefix=_with_slashes(environ["JUPYTERHUB_SERVICE_PREFIX"]),
        api_url=environ["JUPYTERHUB_API_URL"].rstrip("/"),
        api_token=environ["JUPYTERHUB_API_TOKEN"],
        client_id=environ["JUPYTERHUB_CLIENT_ID"],
        oauth_callback_url=environ["JUPYTERHUB_OAUTH_CALLBACK_URL"],
        service_url=service_url,
        base_url=_with_slashes(environ.get("JUPYTERHUB_BASE_URL") or "/"),
        hub_host=environ.get("JUPYTERHUB_HOST", "").rstrip("/"),
        activity_url=environ.get("JUPYTERHUB_ACTIVITY_URL", ""),
        server_name=environ.get("JUPYTERHUB_SERVER_NAME", ""),
        version=environ.get("FLASKHUB_SINGLEUSER_VERSION") or JUPYTERHUB_VERSION,
        listen_host=ip or url_host or "127.0.0.1",
        listen_port=listen_port,
        access_scopes=_access_scopes(environ),
    )


def _access_scopes(environ: Mapping[str, str]) -> tuple[str, ...]:
    """JUPYTERHUB_OAUTH_ACCESS_SCOPES (a JSON list), else this server's own, as JupyterHub's."""
    raw = environ.get("JUPYTERHUB_OAUTH_ACCESS_SCOPES")
    if not raw:
        user, server = environ["JUPYTERHUB_USER"], environ.get("JUPYTERHUB_SERVER_NAME", "")
        return (f"access:servers!server={user}/{server}", f"access:servers!user={user}")
    try:
        scopes = json.loads(raw)
    except ValueError:
        scopes = None
    if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
        raise ConfigError("JUPYTERHUB_OAUTH_ACCESS_SCOPES must be a JSON list of scope names")
    return tuple(scopes)


def cookie_secret(api_token: str) -> bytes:
    """Derive the cookie-signing key from the API token, so it survives restarts."""
    return hmac.new(
        api_token.encode(), b"flaskhub-singleuser-cookie-secret", hashlib.sha256
    ).digest()


def isoformat_z(moment: datetime) -> str:
    """Format an aware datetime as ISO 8601 UTC with a trailing Z, as JupyterHub does."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def _split_service_url(service_url: str) -> tuple[str, int]:
    if not service_url:
        return "", 0
    try:
        parts = urlsplit(service_url)
        return parts.hostname or "", parts.port or 0
    except ValueError as exc:
        raise ConfigError(f"invalid JUPYTERHUB_SERVICE_URL {service_url!r}: {exc}") from exc


def _env_port(environ: Mapping[str, str]) -> int:
    value = environ.get("JUPYTERHUB_SERVICE_PORT", "")
    if not value:
        return 0
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise ConfigError(f"invalid JUPYTERHUB_SERVICE_PORT {value!r}: not a port number")
    return int(value)


def _with_slashes(path: str) -> str:
    return "/" + path.strip("/") + "/" if path.strip("/") else "/"
