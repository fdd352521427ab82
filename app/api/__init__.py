"""The REST API under /hub/api: JupyterHub's paths, shapes and status codes.

Each module holds the routes of one resource on a blueprint of its own; this
one nests them under /hub/api and checks what every API request needs.
"""

from __future__ import annotations

from flask import Blueprint, Response, request

from app.api import (
    groups,
    hub,
    named_servers,
    oauth,
    proxy,
    services,
    shares,
    system_accounts,
    tokens,
    users,
)
from app.auth import csrf_ok, current_identity
from app.errors import HubError
from app.headers import API_PATHS

bp = Blueprint("api", __name__, url_prefix="/hub/api")
for module in (
    groups,
    hub,
    named_servers,
    oauth,
    proxy,
    services,
    shares,
    system_accounts,
    tokens,
    users,
):
    bp.register_blueprint(module.bp)


@bp.before_app_request
def _options() -> Response | None:
    """OPTIONS on any API path, routed or not (CORS preflight): 200, empty.

    App-wide, because a blueprint's hooks skip URLs that match none of its routes;
    the after_request hooks (flask-cors, default headers) still apply.
    """
    if request.method == "OPTIONS" and API_PATHS.match(request.path):
        return Response("", 200)
    return None


@bp.before_request
def _checks() -> Response | None:
    identity = current_identity()
    if identity.via_cookie and not csrf_ok():
        raise HubError(403, "XSRF cookie does not match POST argument")
    return None
