"""Services: GET /hub/api/services[/<name>]; POST and DELETE /hub/api/services/<name>
(JupyterHub 5's services created at run time, for admin:services)."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, jsonify

from app.api.common import json_body, require_identity, require_scope
from app.errors import HubError
from app.roles import get_roles
from app.scopes import DEFAULT_ROLES
from app.servers import get_servers
from app.services.registry import ServiceRegistry, get_services
from app.services.specs import ServiceSpec

log = logging.getLogger(__name__)
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
    registry, roles = get_services(), get_roles().service_roles()
    return jsonify(
        {
            spec.name: service_model(registry, spec, roles[spec.name])
            for spec in registry.all()
            if any(identity.has_scope(s, service=spec.name) for s in LIST_SCOPES)
        }
    )


@bp.get("/services/<name>")
def get_service(name: str) -> Response:
    require_scope("read:services", service=name)
    registry = get_services()
    spec = registry.get(name)
    if spec is None:
        raise HubError(404, f"No such service: {name}")
    return jsonify(service_model(registry, spec, get_roles().service_roles()[name]))


@bp.post("/services/<name>")
def create_service(name: str) -> tuple[Response, int]:
    """Create a service (no `command`: managed ones come from the setting only); 201."""
    identity = require_scope("admin:services")
    body = json_body({})
    if not isinstance(body, dict) or not body:
        raise HubError(400, "Invalid service data: a JSON object of the service's fields")
    wanted = [*(DEFAULT_ROLES["admin"] if body.get("admin") is True else ())]
    if isinstance(body.get("oauth_client_allowed_scopes"), list):
        wanted += [s for s in body["oauth_client_allowed_scopes"] if isinstance(s, str)]
    missing = identity.missing_scopes(frozenset(wanted))
    if missing:
        raise HubError(400, f"Cannot give a service scopes you do not hold: {sorted(missing)}")
    registry = get_services()
    spec = registry.create(name, body)
    _try_route(spec)
    return jsonify(service_model(registry, spec, [])), 201


@bp.delete("/services/<name>")
def delete_service(name: str) -> Response:
    """Delete a service created through the API (405 for one of the setting)."""
    require_scope("admin:services")
    spec = get_services().delete(name)
    if spec.url:
        get_servers().routes.delete(spec.prefix)
    return Response(status=200)


def _try_route(spec: ServiceSpec) -> None:
    """Route a new service now; if the proxy is down the route check adds it later."""
    from proxy.client import ProxyError

    if not spec.url:
        return
    target, data = get_services().routes()[spec.prefix]
    try:
        get_servers().routes.add(spec.prefix, target, data)
    except ProxyError as e:
        log.warning("Could not route service %s now (%s): the route check will", spec.name, e)


def service_model(registry: ServiceRegistry, spec: ServiceSpec, roles: list[str]) -> dict[str, Any]:
    """JupyterHub's service model."""
    return {
        "kind": "service",
        "name": spec.name,
        "admin": spec.admin,
        "roles": sorted({*(["admin"] if spec.admin else []), *roles}),
        "url": spec.url,
        "prefix": spec.prefix if spec.url else "",
        "command": list(spec.command),
        "pid": registry.pid(spec) if spec.managed else 0,
        "info": dict(spec.info),
        "display": spec.display,
    }
