"""Who a request comes from: X-Forwarded-For and -Proto, believed only from the proxy.

The proxy the hub starts (CHP) reaches it over a Unix socket in data_dir, which
only the hub's account can open; an operator's own proxies are named in
`trusted_proxies` (addresses or networks). Anything else that reaches the
hub's port, a user's server or container included, is its socket's peer address
whatever it says: the login throttle counts by that address.

From a trusted peer, X-Forwarded-For is read from the right, each trusted hop
in turn; the first address that is not a trusted proxy is the client. The
forwarding headers are removed afterwards, so nothing later reads them again.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# Whoever sent them, no later code may read these: the answer is in REMOTE_ADDR.
FORWARDING_HEADERS = (
    "HTTP_X_FORWARDED_FOR",
    "HTTP_X_FORWARDED_PROTO",
    "HTTP_X_FORWARDED_HOST",
    "HTTP_X_FORWARDED_PORT",
    "HTTP_X_FORWARDED_PREFIX",
    "HTTP_X_REAL_IP",
    "HTTP_FORWARDED",
)


def parse_address(text: str) -> Address | None:
    """The address (an IPv4-mapped IPv6 one as IPv4), or None for anything else."""
    try:
        address = ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def parse_networks(values: Iterable[str]) -> list[Network]:
    """The trusted_proxies setting as networks; ValueError names a bad entry."""
    return [ipaddress.ip_network(value.strip(), strict=False) for value in values]


class TrustedProxies:
    """WSGI middleware: REMOTE_ADDR and the URL scheme as the proxy saw them."""

    def __init__(self, app: WSGIApplication, trusted: Iterable[str]) -> None:
        self.app = app
        self.trusted = parse_networks(trusted)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Any:
        if self._from_proxy(environ):
            self._believe(environ)
        else:
            peer = parse_address(environ.get("REMOTE_ADDR", ""))
            if peer is not None:
                environ["REMOTE_ADDR"] = str(peer)
        for key in FORWARDING_HEADERS:
            environ.pop(key, None)
        return self.app(environ, start_response)

    def _from_proxy(self, environ: WSGIEnvironment) -> bool:
        """Over the hub's Unix socket (the proxy it started), or from a trusted_proxies peer."""
        sock = environ.get("gunicorn.socket")
        if sock is not None and sock.family == socket.AF_UNIX:
            return True
        return self._trusted(parse_address(environ.get("REMOTE_ADDR", "")))

    def _trusted(self, address: Address | None) -> bool:
        return address is not None and any(address in network for network in self.trusted)

    def _believe(self, environ: WSGIEnvironment) -> None:
        """Walk X-Forwarded-For from the right past trusted hops; the scheme of the
        outermost trusted one (each hop appends its own)."""
        hops = [h for h in environ.get("HTTP_X_FORWARDED_FOR", "").split(",") if h.strip()]
        client: Address | None = None
        trusted_hops = 1  # the peer itself
        for hop in reversed(hops):
            address = parse_address(hop)
            if address is None:
                break  # not an address: the hop before it is as far as anyone vouches
            client = address
            if not self._trusted(address):
                break
            trusted_hops += 1
        if client is not None:
            environ["REMOTE_ADDR"] = str(client)
        elif environ.get("REMOTE_ADDR") in (None, ""):
            environ["REMOTE_ADDR"] = "unix"
        protos = [p.strip().lower() for p in environ.get("HTTP_X_FORWARDED_PROTO", "").split(",")]
        protos = [p for p in protos if p]
        if protos:
            proto = protos[max(-trusted_hops, -len(protos))]
            if proto in ("http", "https"):
                environ["wsgi.url_scheme"] = proto
