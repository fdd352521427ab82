"""GET /hub/api, /hub/api/info, /hub/api/user."""

from __future__ import annotations

import sys
from functools import cache
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, jsonify

from app.api.common import include_stopped, require_identity, require_scope
from app.api.serialize import user_model
from app.config import current_settings
from app.roles import get_roles
from app.tokens import Service
from app.version import __version__

bp = Blueprint("hub", __name__)


@bp.get("/")
@bp.get("")
def root() -> Response:
    """The JupyterHub API version FlaskHub implements (no auth)."""
    return jsonify({"version": current_settings().api_version})


@bp.get("/openapi.json")
def openapi() -> Response:
    """This API's OpenAPI description, as JSON (no auth)."""
    spec = _openapi_spec()
    version = current_settings().api_version
    return jsonify({**spec, "info": {**spec["info"], "version": version}})


@cache
def _openapi_spec() -> dict[str, Any]:
    import yaml  # only for this rarely asked document: not in every worker's memory

    return yaml.safe_load((Path(__file__).parent / "openapi.yaml").read_text())


@bp.get("/info")
def info() -> Response:
    require_scope("read:hub")
    settings = current_settings()
    return jsonify(
        {
            "version": settings.api_version,
            "flaskhub_version": __version__,
            "python": sys.version.split()[0],
            "sys_executable": sys.executable,
            "authenticator": {"class": settings.authenticator},
            "spawner": {"class": settings.spawner},
        }
    )


def service_roles(service: Service) -> list[str]:
    """A service's roles: `admin` if it is one, and those load_roles gives it."""
    return sorted(
        {*(["admin"] if service.admin else []), *get_roles().service_roles()[service.name]}
    )


@bp.get("/user")
def whoami() -> Response:
    """The model of the credential's owner, with the scopes the credential carries."""
    identity = require_identity()
    scopes = sorted(identity.scopes)
    if identity.user is None:
        assert identity.service is not None
        return jsonify(
            {
                "kind": "service",
                "name": identity.service.name,
                "admin": identity.service.admin,
                "roles": service_roles(identity.service),
                "scopes": scopes,
            }
        )
    model = user_model(identity.user, include_stopped=include_stopped())
    return jsonify({**model, "scopes": scopes})
