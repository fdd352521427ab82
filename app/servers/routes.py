"""The proxy's routing table as the hub keeps it; the one owner of the proxy client.

Every route change is timed and reported to the Recorder here, and nowhere else.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select

from app.db import Database
from app.models import Server, ServerState
from app.servers.names import route_data, route_spec
from app.servers.recorder import Recorder
from app.users import UserService
from proxy.client import ProxyClient, ProxyError

log = logging.getLogger(__name__)


class Routes:
    """Adds, deletes and lists the hub's routes in CHP through one ProxyClient."""

    def __init__(self, client: ProxyClient, recorder: Recorder, subdomain_host: str = "") -> None:
        self.client = client
        self.recorder = recorder
        self.subdomain_host = subdomain_host
        #: Other routes the check keeps, {prefix: (target, data)}: the services' (app.services).
        self.extra_routes: Callable[[], dict[str, tuple[str, dict[str, Any]]]] = dict

    def use(self, client: ProxyClient) -> None:
        """Talk to another proxy from now on (calls in flight keep the old client)."""
        self.client = client
        log.warning("The hub now uses the proxy API at %s", client.api_url)

    def ping(self) -> bool:
        return self.client.ping()

    def all(self) -> dict[str, dict[str, Any]]:
        """CHP's whole table (timed as a proxy poll)."""
        t0 = time.monotonic()
        routes = self.client.get_all_routes()
        self.recorder.proxy_poll(time.monotonic() - t0)
        return routes

    def get(self, prefix: str) -> dict[str, Any] | None:
        return self.client.get_route(prefix)

    def add(self, prefix: str, target: str, data: dict[str, Any]) -> None:
        """Add (or re-point) a route; raises ProxyError."""
        self._timed(self.recorder.proxy_add, self.client.add_route, prefix, target, data)

    def spec(self, user_name: str, server_name: str = "") -> str:
        """A server's route (by host too, with per-user origins)."""
        return route_spec(self.subdomain_host, user_name, server_name)

    def on_hub_host(self, prefix: str) -> str:
        """A route of the hub's own origin (the services'): by host too, with per-user
        origins, where a route of no host matches nothing."""
        if not self.subdomain_host:
            return prefix
        return f"/{urlsplit(self.subdomain_host).hostname}{prefix}"

    def add_server(self, user_name: str, server_name: str, url: str) -> None:
        """Route a server's prefix to it; raises ProxyError."""
        self.add(self.spec(user_name, server_name), url, route_data(user_name, server_name))

    def delete_server(self, user_name: str, server_name: str) -> None:
        """Delete a server's route (logged, never raised: as delete)."""
        self.delete(self.spec(user_name, server_name))

    def delete(self, prefix: str) -> None:
        """Delete a route; a failure is logged (the route check retries it), never raised."""
        try:
            self._timed(self.recorder.proxy_delete, self.client.delete_route, prefix)
        except ProxyError as e:
            log.error("Could not delete route %s: %s (the route check will retry)", prefix, e)

    def check(self, db: Database, users: UserService, hub_url: str) -> dict[str, int]:
        """The route check: make CHP's table match the database (the reconcile loop and
        POST /hub/api/proxy call it). Also moves servers' last_activity forward from
        CHP's. Returns {"added", "deleted"}; raises ProxyError.
        """
        t0 = time.monotonic()
        routes = self.all()
        with db.read() as session:
            rows = session.scalars(
                select(Server).where(Server.state.in_([ServerState.RUNNING, ServerState.SPAWNING]))
            ).all()
        wanted: dict[str, tuple[str, dict[str, Any]]] = {
            **{self.on_hub_host(p): route for p, route in self.extra_routes().items()},
            "/": (hub_url, {"hub": True, "jupyterhub": True}),
        }
        starting = set()
        for server in rows:
            prefix = self.spec(server.user.name, server.name)
            if server.state == ServerState.SPAWNING or server.url is None:
                starting.add(prefix)  # finish_spawn owns its route until it is running
                continue
            wanted[prefix] = (server.url, route_data(server.user.name, server.name))
            seen = (routes.get(prefix) or {}).get("last_activity")
            if seen is not None and (server.last_activity is None or seen > server.last_activity):
                users.record_activity(server.user_id, seen, {server.name: seen})
        added, deleted = self.sync(routes, wanted, keep=starting)
        self.recorder.check_routes(time.monotonic() - t0)
        return {"added": added, "deleted": deleted}

    def ensure(self, server: Server) -> bool:
        """Re-add a running server's route if CHP lost it; True if it did."""
        prefix = self.spec(server.user.name, server.name)
        if server.url is None or self.get(prefix) is not None:
            return False
        self.add_server(server.user.name, server.name, server.url)
        log.warning("The proxy had no route for %s: re-added it (-> %s)", prefix, server.url)
        return True

    def sync(
        self,
        routes: dict[str, dict[str, Any]],
        wanted: dict[str, tuple[str, dict[str, Any]]],
        *,
        keep: set[str],
    ) -> tuple[int, int]:
        """Given CHP's table, add the wanted routes it lacks (or points elsewhere) and
        delete the hub's others, except those in `keep` (a spawn owns its route until
        it is running). Returns how many were added and deleted; raises ProxyError.
        """
        added = deleted = 0
        for prefix, (target, data) in wanted.items():
            route = routes.get(prefix)
            if route is None or route["target"] != target:
                log.warning(
                    "Route %s missing from the proxy (or wrong): adding -> %s", prefix, target
                )
                self.add(prefix, target, data)
                added += 1
        for prefix, route in routes.items():
            if route["data"].get("jupyterhub") and prefix not in wanted and prefix not in keep:
                log.warning("Deleting stale route %s -> %s", prefix, route["target"])
                self.delete(prefix)
                deleted += 1
        return added, deleted

    def _timed(
        self, report: Callable[[bool, float], None], call: Callable[..., Any], *args: Any
    ) -> None:
        t0 = time.monotonic()
        try:
            call(*args)
        except ProxyError:
            report(False, time.monotonic() - t0)
            raise
        report(True, time.monotonic() - t0)
