"""The proxy's routing table: GET/POST/PATCH /hub/api/proxy (scope `proxy`).

GET lists the routes the hub owns (as JupyterHub shows them), POST makes CHP's
table match the database now (after a proxy restart, say), PATCH points the
hub at another CHP and syncs it.

PATCH changes the proxy of the worker that answers it; with several workers,
send it to each (or restart the hub with the new settings). With several CHP
instances (proxy_api_urls), GET shows the first that answers, and PATCH puts
one URL (or one name for every address, with proxy_api_every_address) in
their place.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Response, jsonify

from app.api.common import json_body, require_scope
from app.api.pagination import page_args, paginated
from app.api.serialize import isoformat
from app.errors import HubError
from app.outcomes import shown
from app.servers import get_servers
from proxy.client import ProxyError
from proxy.instances import ProxyInstances

bp = Blueprint("proxy", __name__)

log = logging.getLogger(__name__)

PATCH_KEYS = frozenset({"api_url", "auth_token"})


@bp.get("/proxy")
def get_routes() -> Response:
    """{routespec: {routespec, target, data}} of the hub's routes, sorted, paginated."""
    require_scope("proxy")
    offset, limit = page_args()
    try:
        routes = get_servers().routes.all()
    except ProxyError as e:
        raise HubError(502, str(e)) from None
    # "/" is the hub's own route (CHP's default target, which may carry no data).
    ours = sorted(s for s, route in routes.items() if s == "/" or route["data"].get("jupyterhub"))
    page = {spec: _route_model(routes[spec]) for spec in ours[offset : offset + limit]}
    return jsonify(paginated(page, offset, limit, len(ours)))


@bp.post("/proxy")
def sync_routes() -> Response:
    """Re-add missing routes and delete stale ones now, not at the next check."""
    require_scope("proxy")
    _sync("Syncing the proxy's routes failed")
    return Response(status=200)


@bp.patch("/proxy")
def repoint() -> Response:
    """Use another proxy: {"api_url": ..., "auth_token": ...} (either or both), then sync."""
    require_scope("proxy")
    body = json_body()
    if not isinstance(body, dict) or not body or set(body) - PATCH_KEYS:
        raise HubError(400, 'Send {"api_url": "http://host:port", "auth_token": "..."}.')
    routes = get_servers().routes
    proxies = routes.proxies
    api_url = body.get("api_url", proxies.api_url)
    _check_api_url(api_url)
    if [api_url.rstrip("/")] != proxies.api_urls and "auth_token" not in body:
        # The current token is never sent to another URL: whoever holds `proxy`
        # could otherwise point the hub at a server of theirs and receive it.
        raise HubError(400, "A new api_url needs its auth_token in the same request.")
    token = body.get("auth_token", proxies.auth_token)
    if not isinstance(token, str) or not token:
        raise HubError(400, "auth_token must be a non-empty string")
    routes.use(ProxyInstances([api_url], token, every_address=proxies.every_address))
    _sync(f"Now using the proxy at {routes.proxies.api_url}, but syncing its routes failed")
    return Response(status=200)


def _route_model(route: dict[str, Any]) -> dict[str, Any]:
    """JupyterHub's shape: CHP's own fields (last_activity) in data, without "jupyterhub"."""
    data = {k: v for k, v in route["data"].items() if k != "jupyterhub"}
    if route.get("last_activity") is not None:
        data["last_activity"] = isoformat(route["last_activity"])
    return {"routespec": route["routespec"], "target": route["target"], "data": data}


def _check_api_url(api_url: object) -> None:
    ok = False
    if isinstance(api_url, str):
        try:
            parts = urlsplit(api_url)
            _ = parts.port  # a port that is not a number raises here
            ok = parts.scheme in ("http", "https") and bool(parts.hostname)
        except ValueError:
            pass
    if not ok:
        raise HubError(
            400,
            f"api_url must be an http(s) URL such as http://127.0.0.1:8001, not {shown(api_url)}",
        )


def _sync(failure: str) -> None:
    try:
        result = get_servers().check_routes()
    except ProxyError as e:
        raise HubError(502, f"{failure}: {e}") from None
    log.info("Proxy routes synced on request: %s", result)
