"""GET /hub/api, /hub/api/info, /hub/api/user."""

from __future__ import annotations

import sys

from flask import Response, current_app, jsonify

import app
from app.api import bp, require_admin, require_identity
from app.api.serialize import user_model, user_scopes


@bp.get("/")
@bp.get("")
def root() -> Response:
    """The JupyterHub API version FlaskHub implements (no auth)."""
    return jsonify({"version": current_app.config["FLASKHUB"].api_version})


@bp.get("/info")
def info() -> Response:
    require_admin()
    settings = current_app.config["FLASKHUB"]
    return jsonify(
        {
            "version": settings.api_version,
            "flaskhub_version": app.__version__,
            "python": sys.version.split()[0],
            "sys_executable": sys.executable,
            "authenticator": {"class": settings.authenticator},
            "spawner": {"class": settings.spawner},
        }
    )


@bp.get("/user")
def whoami() -> Response:
    """The model of the credential's owner, with the scopes the credential carries."""
    identity = require_identity()
    if identity.user is None:
        assert identity.service is not None
        scopes = ["admin:users", "admin:servers", "read:metrics"] if identity.service.admin else []
        return jsonify(
            {
                "kind": "service",
                "name": identity.service.name,
                "admin": identity.service.admin,
                "roles": [],
                "scopes": scopes,
            }
        )
    model = user_model(identity.user)
    if identity.full_access:
        model["scopes"] = user_scopes(identity.user)
    else:
        assert identity.token is not None
        model["scopes"] = sorted(identity.token.scopes)
    return jsonify(model)
