"""Services from the `services` setting: GET /hub/api/services[/<name>] (read-only)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from app.api.common import require_identity, require_scope
from app.config import current_settings
from app.errors import HubError
from app.roles import get_roles

bp = Blueprint("services", __name__)

LIST_SCOPES = ("list:services", "read:services")


@bp.get("/services")
def list_services() -> Response:
    """{name: model} of the services the caller may see (JupyterHub answers a dict too)."""
    identity = require_identity()
    if not any(identity.has_scope(scope) for scope in LIST_SCOPES):
        raise HubError(
            403, "Action is not authorized with current scopes; requires any of [list:services]."
        )
    roles = get_roles().service_roles()
    return jsonify(
        {
            service["name"]: service_model(service, roles[service["name"]])
            for service in current_settings().services
            if any(identity.has_scope(s, service=service["name"]) for s in LIST_SCOPES)
        }
    )


@bp.get("/services/<name>")
def get_service(name: str) -> Response:
    require_scope("read:services", service=name)
    service = next((s for s in current_settings().services if s["name"] == name), None)
    if service is None:
        raise HubError(404, f"No such service: {name}")
    return jsonify(service_model(service, get_roles().service_roles()[name]))


def service_model(service: dict[str, Any], roles: list[str]) -> dict[str, Any]:
    """JupyterHub's service model. FlaskHub runs no services: no command, pid or prefix."""
    return {
        "kind": "service",
        "name": service["name"],
        "admin": bool(service.get("admin", False)),
        "roles": sorted({*(["admin"] if service.get("admin") else []), *roles}),
        "url": service.get("url", ""),
        "prefix": "",
        "command": [],
        "pid": 0,
        "info": {},
        "display": True,
    }
