"""Every configurable-http-proxy instance the hub keeps in sync.

One CHP (the usual case), several at known API URLs (a proxy on each of several
machines behind a load balancer), or every address a host name resolves to (a
swarm's global proxy service, found by DNS: a name with `endpoint_mode: dnsrr`,
or `tasks.<service>`). Each instance has a route table of its own in memory; the
hub writes each route to every instance it knows, and the route check fills an
instance that is new or restarted.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import gevent.pool

from proxy.client import ProxyClient, ProxyError
from proxy.hosts import url_host

log = logging.getLogger(__name__)

T = TypeVar("T")
#: How long a name's addresses are used before it is resolved again: a new proxy task
#: gets its routes within this, plus one tick of the route check.
RESOLVE_SECONDS = 5.0
#: How long an instance that failed a write is left out of the next writes (so one dead
#: node does not slow every spawn by its timeouts); the route check tries it each time.
DOWN_SECONDS = 10.0

Resolver = Callable[[str, int], list[str]]


def resolve_addresses(host: str, port: int) -> list[str]:
    """Every address host resolves to (IPv4 and IPv6), sorted; [] if it resolves to none."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        log.warning("The proxy API's host name %s resolves to no address: %s", host, e)
        return []
    return sorted({str(info[4][0]) for info in infos})


class ProxyInstances:
    """The CHP instances behind one or more API URLs, with one ProxyClient each.

    Writes (add_route, delete_route) go to every instance at once and succeed when
    at least one took them: an instance that failed is logged, left out of writes
    for DOWN_SECONDS, and filled by the next route check. They raise ProxyError
    when none did, or when there is no instance at all.
    """

    def __init__(
        self,
        api_urls: list[str],
        auth_token: str,
        *,
        every_address: bool = False,
        resolve: Resolver = resolve_addresses,
        **client_options: Any,
    ) -> None:
        if not api_urls:
            raise ValueError("at least one proxy API URL is needed")
        self.api_urls = [url.rstrip("/") for url in api_urls]
        self.auth_token = auth_token
        self.every_address = every_address
        self._resolve = resolve
        self._client_options = client_options
        self._clients: dict[str, ProxyClient] = {}
        self._resolved_at = -RESOLVE_SECONDS
        self._down_until: dict[str, float] = {}

    @property
    def api_url(self) -> str:
        """The first API URL as configured (what a single-proxy hub reports)."""
        return self.api_urls[0]

    def clients(self) -> list[ProxyClient]:
        """Every instance known now, names resolved again when RESOLVE_SECONDS have passed."""
        now = time.monotonic()
        if not self._clients or now - self._resolved_at >= RESOLVE_SECONDS:
            self._resolved_at = now
            urls = [u for url in self.api_urls for u in self._instance_urls(url)]
            old, self._clients = self._clients, {}
            for url in dict.fromkeys(urls):
                kept = old.pop(url, None)
                self._clients[url] = kept if kept is not None else self._client(url)
            for gone in old.values():
                log.warning("The proxy at %s is gone from %s", gone.api_url, self.api_urls)
                self._down_until.pop(gone.api_url, None)
                gone.close()
        return list(self._clients.values())

    def writable(self) -> list[ProxyClient]:
        """The instances writes go to: all but those that failed a moment ago (one whose
        DOWN_SECONDS are over is pinged first, which costs at most PING_TIMEOUT)."""
        now = time.monotonic()
        clients = self.clients()
        due = [c for c in clients if 0.0 < self._down_until.get(c.api_url, 0.0) <= now]
        for client, ok in self.each(lambda c: c.ping(), due):
            if ok is True:
                self.answered(client)
            else:
                self._down_until[client.api_url] = now + DOWN_SECONDS
        return [c for c in clients if c.api_url not in self._down_until]

    def each(
        self, call: Callable[[ProxyClient], T], clients: Iterable[ProxyClient] | None = None
    ) -> list[tuple[ProxyClient, T | ProxyError]]:
        """call(client) for each instance at once: its result, or the ProxyError it raised."""

        def one(client: ProxyClient) -> tuple[ProxyClient, T | ProxyError]:
            try:
                return client, call(client)
            except ProxyError as e:
                return client, e

        targets = list(self.clients() if clients is None else clients)
        if len(targets) == 1:
            return [one(targets[0])]
        return list(gevent.pool.Group().imap(one, targets))

    def add_route(self, routespec: str, target: str, data: dict[str, Any]) -> None:
        """Route routespec to target on every instance; raises ProxyError if none took it."""
        self._write(lambda c: c.add_route(routespec, target, data), f"add the route {routespec}")

    def delete_route(self, routespec: str) -> None:
        """Delete routespec on every instance; raises ProxyError if none answered."""
        self._write(lambda c: c.delete_route(routespec), f"delete the route {routespec}")

    def ping(self) -> bool:
        """True if any instance answers with our token."""
        return any(ok is True for _, ok in self.each(lambda c: c.ping()))

    def failed(self, client: ProxyClient) -> None:
        """client did not answer: left out of writes (and route lookups) for DOWN_SECONDS."""
        self._down_until[client.api_url] = time.monotonic() + DOWN_SECONDS

    def answered(self, client: ProxyClient) -> None:
        """client answered (a ping, the route check): writes go to it again."""
        if self._down_until.pop(client.api_url, None) is not None:
            log.warning("The proxy at %s answers again", client.api_url)

    def close(self) -> None:
        for client in self._clients.values():
            client.close()

    def _write(self, call: Callable[[ProxyClient], None], what: str) -> None:
        clients = self.writable() or self.clients()
        if not clients:
            raise ProxyError(f"Could not {what}: {self._no_instance()}")
        results = self.each(call, clients)
        failed = [(c, r) for c, r in results if isinstance(r, ProxyError)]
        for client, error in failed:
            self.failed(client)
            if len(results) > 1:
                log.error(
                    "Could not %s on the proxy at %s: %s (the route check fills it when it "
                    "answers again)",
                    what,
                    client.api_url,
                    error,
                )
        if len(failed) == len(results):
            raise failed[0][1]  # type: ignore[misc]

    def _instance_urls(self, api_url: str) -> list[str]:
        if not self.every_address:
            return [api_url]
        parts = urlsplit(api_url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        host = parts.hostname or ""
        netlocs = [f"{url_host(a)}:{port}" for a in self._resolve(host, port)]
        return [urlunsplit(parts._replace(netloc=netloc)) for netloc in netlocs]

    def _client(self, url: str) -> ProxyClient:
        options = dict(self._client_options)
        if len(self.api_urls) > 1 or self.every_address:
            log.info("Keeping the routes of the proxy at %s", url)
            # One retry, not three: an instance that is down (its node lost) would hold
            # each write for all its timeouts, and the route check fills it later anyway.
            options.setdefault("retries", 1)
        return ProxyClient(url, self.auth_token, **options)

    def _no_instance(self) -> str:
        names = ", ".join(self.api_urls)
        if self.every_address:
            return f"no proxy instance: {names} resolves to no address (is the proxy service up?)"
        return f"no proxy at {names}"
