"""The REST API under /hub/api: JupyterHub's paths, shapes and status codes.

Each module holds the routes of one resource on a blueprint of its own; this
one nests them under /hub/api and checks what every API request needs.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request

from app.api import (
    authorizations,
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
from app.auth.session import csrf_ok, current_identity
from app.errors import HubError
from app.headers import API_PATHS
from app.names import normalize_username
from app.outcomes import Invalid
from app.users import get_users

bp = Blueprint("api", __name__, url_prefix="/hub/api")
# The routes whose <name> is a user's (elsewhere a group's or a service's); <owner> is
# always a user's.
USER_NAMED = tuple(f"{bp.url_prefix}/{kind}/<name>" for kind in ("users", "shares", "share-codes"))

for module in (
    authorizations,
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


@bp.url_value_preprocessor
def _user_names(endpoint: str | None, values: dict[str, Any] | None) -> None:
    """A user named in the path in any case is that user (`Alice` is `alice`, as in
    JupyterHub); a name the normalisation refuses is a 400 saying why."""
    if not values or request.url_rule is None:
        return
    if "name" in values and request.url_rule.rule.startswith(USER_NAMED):
        values["name"] = _path_username(values["name"])
    if "owner" in values:
        values["owner"] = _path_username(values["owner"])


def _path_username(name: str) -> str:
    """The normal form of a user's name in a path; a name it refuses only if a user has
    exactly that name (made before the normalisation refused it: the admin can still
    rename or delete them; such a user can no longer log in)."""
    try:
        return normalize_username(name)
    except Invalid:
        if get_users().exists(name):
            return name
        raise
