"""The proxy's routing table as the hub keeps it; the one owner of the proxy clients.

Every route change is timed and reported to the Recorder here, and nowhere else.
With several CHP instances (proxy.instances), each has a table of its own: writes
go to all of them, and the route check compares and fills each.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select

from app.db import Database
from app.models import Server, ServerState
from app.servers.names import route_data, route_spec
from app.servers.recorder import Recorder
from app.users import UserService
from proxy.client import ProxyClient, ProxyError
from proxy.instances import ProxyInstances

log = logging.getLogger(__name__)


class Routes:
    """Adds, deletes and lists the hub's routes in every CHP instance it knows."""

    def __init__(
        self, proxies: ProxyInstances, recorder: Recorder, subdomain_host: str = ""
    ) -> None:
        self.proxies = proxies
        self.recorder = recorder
        self.subdomain_host = subdomain_host
        #: Other routes the check keeps, {prefix: (target, data)}: the services' (app.services).
        self.extra_routes: Callable[[], dict[str, tuple[str, dict[str, Any]]]] = dict
        #: The instances the last route check filled: one not among them is new.
        self.checked: set[str] = set()

    def use(self, proxies: ProxyInstances) -> None:
        """Talk to other proxies from now on (calls in flight keep the old clients)."""
        self.proxies, self.checked = proxies, set()
        log.warning("The hub now uses the proxy API at %s", ", ".join(proxies.api_urls))

    def ping(self) -> bool:
        return self.proxies.ping()

    def all(self) -> dict[str, dict[str, Any]]:
        """The whole table of the first instance that answers (timed as a proxy poll)."""
        t0 = time.monotonic()
        error: ProxyError | None = None
        for client in self.proxies.clients():
            try:
                routes = client.get_all_routes()
            except ProxyError as e:
                error = error or e
                continue
            self.recorder.proxy_poll(time.monotonic() - t0)
            return routes
        raise error or ProxyError("No proxy instance to ask for its routes")

    def add(self, prefix: str, target: str, data: dict[str, Any]) -> None:
        """Add (or re-point) a route; raises ProxyError."""
        self._timed(self.recorder.proxy_add, self.proxies.add_route, prefix, target, data)

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
            self._timed(self.recorder.proxy_delete, self.proxies.delete_route, prefix)
        except ProxyError as e:
            log.error("Could not delete route %s: %s (the route check will retry)", prefix, e)

    def check(self, db: Database, users: UserService, hub_url: str) -> dict[str, int]:
        """The route check: make each CHP instance's table match the database (the
        reconcile loop and POST /hub/api/proxy call it). Also moves servers'
        last_activity forward from what any instance saw. Returns {"added",
        "deleted"}; raises ProxyError when no instance answers.
        """
        t0 = time.monotonic()
        tables = self._tables()
        with db.read() as session:
            rows = session.scalars(
                select(Server).where(Server.state.in_([ServerState.RUNNING, ServerState.SPAWNING]))
            ).all()
        wanted: dict[str, tuple[str, dict[str, Any]]] = {
            **{self.on_hub_host(p): route for p, route in self.extra_routes().items()},
            "/": (hub_url, {"hub": True, "jupyterhub": True}),
        }
        starting = set()
        seen_used: dict[int, tuple[datetime | None, dict[str, datetime]]] = {}
        for server in rows:
            prefix = self.spec(server.user.name, server.name)
            if server.state == ServerState.SPAWNING or server.url is None:
                starting.add(prefix)  # finish_spawn owns its route until it is running
                continue
            wanted[prefix] = (server.url, route_data(server.user.name, server.name))
            seen = _latest(table.get(prefix) for table in tables.values())
            if seen is not None and (server.last_activity is None or seen > server.last_activity):
                seen_used.setdefault(server.user_id, (None, {}))[1][server.name] = seen
        users.record_activities(seen_used)
        added = deleted = 0
        for client, table in tables.items():
            one_added, one_deleted = self.sync(table, wanted, keep=starting, client=client)
            added, deleted = added + one_added, deleted + one_deleted
        self.recorder.check_routes(time.monotonic() - t0)
        return {"added": added, "deleted": deleted}

    def ensure(self, server: Server) -> bool:
        """Re-add a running server's route where an instance lost it; True if one had."""
        prefix = self.spec(server.user.name, server.name)
        if server.url is None or server.state != ServerState.RUNNING:
            return False  # a spawn owns its route until the server is running
        lacking = [c for c, route in self._lookups(prefix) if route is None]
        for client in lacking:
            client.add_route(prefix, server.url, route_data(server.user.name, server.name))
            log.warning(
                "The proxy at %s had no route for %s: re-added it (-> %s)",
                client.api_url,
                prefix,
                server.url,
            )
        return bool(lacking)

    def unchecked(self) -> list[str]:
        """The instances (API URLs) that no route check has filled yet: new ones."""
        return [c.api_url for c in self.proxies.clients() if c.api_url not in self.checked]

    def lost(self, prefix: str) -> bool:
        """True if an instance lacks the route prefix (it restarted); one that does not
        answer is not counted (there is nothing to fill yet)."""
        return any(route is None for _, route in self._lookups(prefix))

    def sync(
        self,
        routes: dict[str, dict[str, Any]],
        wanted: dict[str, tuple[str, dict[str, Any]]],
        *,
        keep: set[str],
        client: ProxyClient,
    ) -> tuple[int, int]:
        """Given one instance's table, add the wanted routes it lacks (or points
        elsewhere) and delete the hub's others, except those in `keep` (a spawn owns
        its route until it is running). Returns how many were added and deleted;
        raises ProxyError.
        """
        added = deleted = 0
        for prefix, (target, data) in wanted.items():
            route = routes.get(prefix)
            if route is None or route["target"] != target:
                log.warning(
                    "Route %s missing from the proxy at %s (or wrong): adding -> %s",
                    prefix,
                    client.api_url,
                    target,
                )
                self._timed(self.recorder.proxy_add, client.add_route, prefix, target, data)
                added += 1
        for prefix, route in routes.items():
            if route["data"].get("jupyterhub") and prefix not in wanted and prefix not in keep:
                log.warning(
                    "Deleting stale route %s -> %s at %s", prefix, route["target"], client.api_url
                )
                self._timed(self.recorder.proxy_delete, client.delete_route, prefix)
                deleted += 1
        return added, deleted

    def _tables(self) -> dict[ProxyClient, dict[str, dict[str, Any]]]:
        """Each answering instance's whole table; raises ProxyError if none answers."""
        t0 = time.monotonic()
        results = self.proxies.each(lambda c: c.get_all_routes())
        tables = {c: r for c, r in results if not isinstance(r, ProxyError)}
        # Those that did not answer are known too: when one answers again, its empty
        # table shows in lost(), and this check fills it.
        self.checked = {c.api_url for c, _ in results}
        for client, result in results:
            if isinstance(result, ProxyError):
                log.error("Route check of the proxy at %s skipped: %s", client.api_url, result)
            else:
                self.proxies.answered(client)
        if not tables:
            raise next((r for _, r in results if isinstance(r, ProxyError)), None) or ProxyError(
                f"No proxy instance at {', '.join(self.proxies.api_urls)}"
            )
        self.recorder.proxy_poll(time.monotonic() - t0)
        return tables

    def _lookups(self, prefix: str) -> list[tuple[ProxyClient, dict[str, Any] | None]]:
        """The route prefix as each writable instance has it (None: it has none); one
        that does not answer is left out, and of the next lookups (a lost node's CHP
        would hold each tick of the reconcile loop for its timeouts)."""
        results = self.proxies.each(lambda c: c.get_route(prefix), self.proxies.writable())
        for client, result in results:
            if isinstance(result, ProxyError):
                self.proxies.failed(client)
        return [(c, r) for c, r in results if not isinstance(r, ProxyError)]

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


def _latest(routes: Iterable[dict[str, Any] | None]) -> datetime | None:
    """The latest last_activity among one route's copies (None where none has one)."""
    seen = [r["last_activity"] for r in routes if r and r.get("last_activity") is not None]
    return max(seen, default=None)
