"""Whether a local server listens yet: asked of the kernel once for all the servers
starting in this process, not once for each.

A starting server is looked at every 20 to 100 ms until it listens. With a class
starting at once, a connection attempt per server per look (a socket, a connect, a
close) was the largest single share of the hub's CPU in a spawn. The kernel lists
the listening TCP sockets in one netlink request (sock_diag: what `ss -ltn` asks),
and that list, at most LIST_MAX_AGE old, answers the looks at every starting local
server. Where the kernel cannot be asked so (not Linux, or sock_diag refused), each
look is a connection attempt, as before.

Either look can say yes where a request will still fail (a listener on `::` that
takes no IPv4); the HTTP request that follows a yes is what decides.
"""

from __future__ import annotations

import errno
import math
import socket
import struct
import time
from collections.abc import Callable

from gevent import monkey

# How old the list may be when a look reads it: a server that begins to listen is
# seen at most this long after its next look.
LIST_MAX_AGE = 0.01

# The system's own, whatever gevent patched: neither the list nor a look ever waits.
_SYSTEM_SOCKET = monkey.get_original("socket", "socket")
_SYSTEM_SELECT = monkey.get_original("select", "select")

# linux/netlink.h, linux/sock_diag.h, linux/inet_diag.h, netinet/tcp.h
_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST_DUMP = 0x1 | 0x300
_NLMSG_ERROR = 2
_NLMSG_DONE = 3
_TCP_LISTEN = 10
_HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, seq, pid
_REQUEST = struct.Struct("=BBBBI48x")  # inet_diag_req_v2: family, protocol, ext, pad, states
_HEADER_TYPE = struct.Struct("=IH")
# In an inet_diag_msg after its header: the local port (big-endian) and address.
_PORT_AT = _HEADER.size + 4
_ADDRESS_AT = _HEADER.size + 8

# The errors that say the kernel here will never answer: no netlink, no sock_diag.
_CANNOT_ASK = frozenset(
    (errno.EAFNOSUPPORT, errno.EPROTONOSUPPORT, errno.EPERM, errno.EACCES, errno.ENOENT)
)
_ANY_V4 = bytes(4)
_ANY_V6 = bytes(16)
_MAPPED_PREFIX = bytes(10) + b"\xff\xff"


class Listeners:
    """The listening TCP sockets of this network namespace, as (port, packed address)
    pairs, read again when older than max_age. Reads never yield, so greenlets never
    see one half made."""

    def __init__(self, max_age: float = LIST_MAX_AGE) -> None:
        self.max_age = max_age
        self.usable = True
        self._read_at = -math.inf
        self._listening: set[tuple[int, bytes]] = set()

    def listens(self, port: int, accepting: tuple[bytes, ...]) -> bool | None:
        """Whether something listens at port on one of the packed addresses (those of
        `accepting`), None when the kernel cannot be asked (then ask by connecting)."""
        if not self.usable:
            return None
        if time.monotonic() - self._read_at > self.max_age:
            try:
                self._listening = _listening_sockets()
            except OSError as e:
                # Refused or unknown here: asked by connecting from now on. A dump that
                # failed otherwise is asked again at the next look.
                if e.errno in _CANNOT_ASK:
                    self.usable = False
                return None
            self._read_at = time.monotonic()
        return any((port, packed) in self._listening for packed in accepting)


def accepting(host: str) -> tuple[bytes, ...]:
    """The packed local addresses whose listener takes a connection to host (a loopback
    IP address): itself, the wildcard of its family, and for IPv4 the IPv6 wildcard and
    the IPv4-mapped address."""
    if ":" in host:
        return (socket.inet_pton(socket.AF_INET6, host), _ANY_V6)
    packed = socket.inet_pton(socket.AF_INET, host)
    return (packed, _ANY_V4, _ANY_V6, _MAPPED_PREFIX + packed)


def _listening_sockets() -> set[tuple[int, bytes]]:
    """(port, packed address) of every listening TCP socket, IPv4 and IPv6; raises
    OSError when the kernel cannot be asked."""
    found: set[tuple[int, bytes]] = set()
    with _SYSTEM_SOCKET(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_SOCK_DIAG) as sock:
        sock.setblocking(False)
        for family, size in ((socket.AF_INET, 4), (socket.AF_INET6, 16)):
            request = _REQUEST.pack(family, socket.IPPROTO_TCP, 0, 0, 1 << _TCP_LISTEN)
            header = _HEADER.pack(
                _HEADER.size + len(request), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST_DUMP, family, 0
            )
            sock.send(header + request)
            _read_dump(sock, size, found)
    return found


def _read_dump(sock: socket.socket, size: int, found: set[tuple[int, bytes]]) -> None:
    """Add each socket of one dump to found, until its end. The kernel makes a dump's
    parts as they are read, so a read never waits (a non-blocking read that would is
    an error, not a wait)."""
    while True:
        data = sock.recv(65536)
        at = 0
        while at + _HEADER.size <= len(data):
            length, kind = _HEADER_TYPE.unpack_from(data, at)
            if length < _HEADER.size:
                raise OSError(errno.EPROTO, "sock_diag: a message shorter than its header")
            if kind == _NLMSG_DONE:
                return
            if kind == _NLMSG_ERROR:
                code = -struct.unpack_from("=i", data, at + _HEADER.size)[0]
                raise OSError(code, f"sock_diag: {errno.errorcode.get(code, code)}")
            if kind == _SOCK_DIAG_BY_FAMILY and length >= _ADDRESS_AT + size:
                port = int.from_bytes(data[at + _PORT_AT : at + _PORT_AT + 2], "big")
                found.add((port, data[at + _ADDRESS_AT : at + _ADDRESS_AT + size]))
            at += (length + 3) & ~3


LISTENERS = Listeners()


def local_listener(host: str, port: int) -> Callable[[], bool]:
    """A look at whether a local server at a loopback address (an IP address) listens:
    in the kernel's list of listeners, or where there is none, by a connection attempt.
    The address is read once, since a starting server is looked at dozens of times."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    addresses = accepting(host)

    def look() -> bool:
        known = LISTENERS.listens(port, addresses)
        return _connects_at_once(family, (host, port)) if known is None else known

    return look


def _connects_at_once(family: int, address: tuple[str, int]) -> bool:
    """One non-blocking connection attempt on the system's own socket, whose answer the
    kernel knows at once for a loopback address (gevent's socket costs twice as much,
    to wait for an answer that needs no waiting). Never blocks."""
    try:
        with _SYSTEM_SOCKET(family, socket.SOCK_STREAM) as sock:
            sock.setblocking(False)
            error = sock.connect_ex(address)
            if error == errno.EINPROGRESS:
                _, done, _ = _SYSTEM_SELECT([], [sock], [], 0)
                if not done:
                    # Neither refused nor accepted at once, as the kernel answers a
                    # loopback attempt otherwise: it waits in a full accept queue, so
                    # something listens.
                    return True
                error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            return error == 0
    except OSError:
        return False
