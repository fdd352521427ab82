"""GET /hub/api, /hub/api/info, /hub/api/user."""

from __future__ import annotations

import sys
from functools import cache
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, jsonify

from app.api.common import include_stopped, json_body, require_identity, require_scope
from app.api.serialize import user_model
from app.api.visibility import visibility
from app.config import current_settings
from app.errors import HubError
from app.roles import get_roles
from app.servers import get_servers
from app.shutdown import ShutdownRequest, request_shutdown
from app.tokens import Service
from app.users import get_users
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


@bp.get("/health")
def health() -> Response:
    """Whether the database and the proxy answer (no auth): 200, or 503 naming what does not."""
    checks = get_servers().health()
    body = {part: "ok" if ok else "unreachable" for part, ok in checks.items()}
    response = jsonify({"status": "ok" if all(checks.values()) else "failing", **body})
    response.status_code = 200 if all(checks.values()) else 503
    return response


@bp.post("/shutdown")
def shutdown() -> Response:
    """Stop the hub (scope shutdown), and its servers and proxy as the body says: 202."""
    identity = require_scope("shutdown")
    settings = current_settings()
    body = json_body({})
    if not isinstance(body, dict) or set(body) - {"servers", "proxy"}:
        raise HubError(400, 'Send nothing, or {"servers": true|false, "proxy": true|false}.')
    if not all(isinstance(v, bool) for v in body.values()):
        raise HubError(400, "servers and proxy must be true or false")
    if body.get("proxy") is False and settings.proxy_auto_start:
        raise HubError(
            400,
            "The proxy FlaskHub started stops with it; proxy: false needs an external proxy "
            "(proxy_auto_start = false).",
        )
    wanted = ShutdownRequest(body.get("servers", settings.cleanup_servers), body.get("proxy", True))
    response = jsonify({"message": "Shutting down"})
    response.status_code = 202
    response.call_on_close(lambda: request_shutdown(settings.data_dir, wanted, by=identity.name))
    return response


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
    scopes = identity.shown_scopes
    if identity.user is None:
        assert identity.service is not None
        return jsonify(
            {
                "kind": "service",
                "name": identity.service.name,
                "admin": identity.service.admin,
                "roles": service_roles(identity.service),
                "token_id": None,
                "session_id": None,
                "scopes": scopes,
            }
        )
    user = get_users().view(identity.user.name)
    if user is None:
        raise HubError(404, f"No such user: {identity.user.name}")
    model = user_model(user, include_stopped=include_stopped(), state=True)
    token = identity.token
    model["token_id"] = f"a{token.id}" if token is not None else None
    # FlaskHub's tokens belong to no login session: there is no session id to give.
    model["session_id"] = None
    return jsonify({**visibility(identity, [user]).strip_state(model), "scopes": scopes})
