"""What a service is (from the `services` setting or the API), its checks and its environment.

Imported by the gunicorn arbiter: standard library only.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Names go into URLs (/services/<name>/) and file names.
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._~-]*")
CLIENT_ID_PREFIX = "service-"
# What a managed service keeps of the hub's own environment (as user servers do).
PASSED_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "PYTHONPATH", "TMPDIR", "HOME")


class SpecError(ValueError):
    """A service's definition is wrong; the message names the field."""


@dataclass(frozen=True)
class ServiceSpec:
    """One service. `api_token` is the plain token (the setting's; the API's only at creation)."""

    name: str
    admin: bool = False
    url: str = ""
    api_token: str = ""
    command: tuple[str, ...] = ()
    environment: Mapping[str, str] = field(default_factory=dict)
    oauth_client_id: str = ""
    oauth_redirect_uri: str = ""
    oauth_client_allowed_scopes: tuple[str, ...] = ()
    oauth_no_confirm: bool = False
    info: Mapping[str, Any] = field(default_factory=dict)
    display: bool = True
    from_config: bool = True

    @property
    def prefix(self) -> str:
        return f"/services/{self.name}/"

    @property
    def managed(self) -> bool:
        """Started and supervised by `flaskhub run`."""
        return bool(self.command)

    @property
    def client_id(self) -> str:
        return self.oauth_client_id or f"{CLIENT_ID_PREFIX}{self.name}"

    @property
    def redirect_uri(self) -> str:
        """Where the hub sends a user back with a code; empty: the service has no OAuth."""
        if self.oauth_redirect_uri:
            return self.oauth_redirect_uri
        return f"{self.prefix}oauth_callback" if self.url else ""

    @property
    def access_scopes(self) -> list[str]:
        """What a token from logging in through this service grants (JupyterHub's)."""
        return ["access:services", f"access:services!service={self.name}"]


def spec_from(data: Mapping[str, Any], *, from_config: bool = True) -> ServiceSpec:
    """A ServiceSpec from a `services` entry or an API body; SpecError naming the field."""
    name = data.get("name")
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise SpecError(f"'name' must be a name of letters, digits and ._~- (got {name!r})")
    _check_types(data)
    client_id = data.get("oauth_client_id", "")
    if client_id and not client_id.startswith(CLIENT_ID_PREFIX):
        raise SpecError(f"'oauth_client_id' of {name!r} must start with {CLIENT_ID_PREFIX!r}")
    return ServiceSpec(
        name=name,
        admin=data.get("admin", False),
        url=data.get("url", "").rstrip("/"),
        api_token=data.get("api_token", ""),
        command=tuple(data.get("command", ())),
        environment=dict(data.get("environment", {})),
        oauth_client_id=client_id,
        oauth_redirect_uri=data.get("oauth_redirect_uri", ""),
        oauth_client_allowed_scopes=tuple(data.get("oauth_client_allowed_scopes", ())),
        oauth_no_confirm=data.get("oauth_no_confirm", False),
        info=dict(data.get("info", {})),
        display=data.get("display", True),
        from_config=from_config,
    )


# Each optional field and the type it must have.
FIELD_TYPES: dict[str, tuple[type, str]] = {
    "admin": (bool, "a bool"),
    "url": (str, "a string"),
    "api_token": (str, "a string"),
    "command": (list, "a list of strings"),
    "environment": (dict, "an object of strings"),
    "oauth_client_id": (str, "a string"),
    "oauth_redirect_uri": (str, "a string"),
    "oauth_client_allowed_scopes": (list, "a list of strings"),
    "oauth_no_confirm": (bool, "a bool"),
    "info": (dict, "an object"),
    "display": (bool, "a bool"),
    "scopes": (list, "a list of strings"),
}


def _check_types(data: Mapping[str, Any]) -> None:
    name = data["name"]
    unknown = sorted(set(data) - set(FIELD_TYPES) - {"name"})
    if unknown:
        raise SpecError(f"unknown field(s) {', '.join(unknown)} of service {name!r}")
    for key, (kind, what) in FIELD_TYPES.items():
        value = data.get(key)
        if value is None:
            continue
        strings = value.values() if kind is dict and key == "environment" else value
        if not isinstance(value, kind) or (
            what.endswith("strings") and not all(isinstance(v, str) for v in strings)
        ):
            raise SpecError(f"'{key}' of service {name!r} must be {what}")


def service_env(spec: ServiceSpec, *, hub_url: str, public_url: str) -> dict[str, str]:
    """The environment a managed service starts with: a few of the hub's own variables,
    its `environment`, then JupyterHub's JUPYTERHUB_* service variables (which win)."""
    env = {k: os.environ[k] for k in PASSED_ENV if k in os.environ}
    env.update(spec.environment)
    access = json.dumps(spec.access_scopes)
    env.update(
        {
            "JUPYTERHUB_SERVICE_NAME": spec.name,
            "JUPYTERHUB_API_TOKEN": spec.api_token,
            "JUPYTERHUB_API_URL": f"{hub_url}/hub/api",
            "JUPYTERHUB_BASE_URL": "/",
            "JUPYTERHUB_HOST": "",
            "JUPYTERHUB_CLIENT_ID": spec.client_id,
            "JUPYTERHUB_OAUTH_CALLBACK_URL": spec.redirect_uri,
            "JUPYTERHUB_OAUTH_SCOPES": access,
            "JUPYTERHUB_OAUTH_ACCESS_SCOPES": access,
            "JUPYTERHUB_OAUTH_CLIENT_ALLOWED_SCOPES": json.dumps(
                list(spec.oauth_client_allowed_scopes)
            ),
            "JUPYTERHUB_PUBLIC_HUB_URL": f"{public_url}/hub/",
        }
    )
    if spec.url:
        env["JUPYTERHUB_SERVICE_URL"] = spec.url
        env["JUPYTERHUB_SERVICE_PREFIX"] = spec.prefix
        env["JUPYTERHUB_PUBLIC_URL"] = public_url + spec.prefix
    return env


def pid_file(data_dir: str, name: str) -> Path:
    """Where the arbiter writes a managed service's current pid (the API's model reads it)."""
    return Path(data_dir) / "services" / f"{name}.pid"
