"""The kernel's list of listeners, which answers the looks at starting local servers."""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterator

import pytest

from app.servers import listening
from app.servers.listening import Listeners, accepting, local_listener


@pytest.fixture
def sockets() -> Iterator[list[socket.socket]]:
    made: list[socket.socket] = []
    yield made
    for sock in made:
        sock.close()


def listening_at(made: list[socket.socket], host: str, family: int = socket.AF_INET) -> int:
    sock = socket.socket(family, socket.SOCK_STREAM)
    made.append(sock)
    sock.bind((host, 0))
    sock.listen()
    return sock.getsockname()[1]


def test_a_listener_is_listed_and_then_not_once_closed(sockets: list[socket.socket]) -> None:
    port = listening_at(sockets, "127.0.0.1")
    kernel = Listeners(max_age=0)
    assert kernel.listens(port, accepting("127.0.0.1")) is True
    # Another loopback address of the family is not where it listens.
    assert kernel.listens(port, accepting("::1")) is False
    sockets.pop().close()
    assert kernel.listens(port, accepting("127.0.0.1")) is False


def test_a_bound_socket_that_does_not_listen_is_not_listed(sockets: list[socket.socket]) -> None:
    sock = socket.socket()
    sockets.append(sock)
    sock.bind(("127.0.0.1", 0))
    assert Listeners(max_age=0).listens(sock.getsockname()[1], accepting("127.0.0.1")) is False


@pytest.mark.parametrize(
    ("bound", "family", "asked", "takes"),
    [
        ("::1", socket.AF_INET6, "::1", True),
        ("::1", socket.AF_INET6, "127.0.0.1", False),
        ("0.0.0.0", socket.AF_INET, "127.0.0.1", True),
        # A dual-stack wildcard takes IPv4 connections too.
        ("::", socket.AF_INET6, "127.0.0.1", True),
        ("::", socket.AF_INET6, "::1", True),
    ],
)
def test_the_listeners_that_take_a_connection_to_an_address(
    sockets: list[socket.socket], bound: str, family: int, asked: str, takes: bool
) -> None:
    port = listening_at(sockets, bound, family)
    assert Listeners(max_age=0).listens(port, accepting(asked)) is takes


def test_every_listener_of_a_dump_in_several_parts_is_listed(
    sockets: list[socket.socket],
) -> None:
    # Hundreds of listeners do not fit in one part of the kernel's answer.
    ports = [listening_at(sockets, "127.0.0.1") for _ in range(400)]
    listed = listening._listening_sockets()
    loopback = socket.inet_aton("127.0.0.1")
    assert all((port, loopback) in listed for port in ports)


def test_the_list_is_read_once_for_the_looks_within_its_age(
    sockets: list[socket.socket], monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = []
    read = listening._listening_sockets

    def counted() -> set[tuple[int, bytes]]:
        reads.append(1)
        return read()

    monkeypatch.setattr(listening, "_listening_sockets", counted)
    port = listening_at(sockets, "127.0.0.1")
    kernel = Listeners(max_age=60)
    assert all(kernel.listens(port, accepting("127.0.0.1")) for _ in range(50))
    assert len(reads) == 1
    assert Listeners(max_age=0).listens(port, accepting("127.0.0.1")) and len(reads) == 2


@pytest.fixture
def netlink_refused(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Netlink sockets fail with the errno the test puts in the list (a fault; 0: none)."""
    failure = [errno.EAFNOSUPPORT]
    system = listening._SYSTEM_SOCKET

    def make(family: int = socket.AF_INET, *args: object) -> socket.socket:
        if family == socket.AF_NETLINK and failure[0]:
            raise OSError(failure[0], "refused by the test")
        return system(family, *args)

    monkeypatch.setattr(listening, "_SYSTEM_SOCKET", make)
    monkeypatch.setattr(listening, "LISTENERS", Listeners(max_age=0))
    return failure


def test_where_the_kernel_cannot_be_asked_a_look_connects(
    sockets: list[socket.socket], netlink_refused: list[int]
) -> None:
    port = listening_at(sockets, "127.0.0.1")
    assert local_listener("127.0.0.1", port)()
    assert listening.LISTENERS.usable is False
    sockets.pop().close()
    assert not local_listener("127.0.0.1", port)()


def test_a_dump_that_fails_once_is_asked_again_at_the_next_look(
    sockets: list[socket.socket], netlink_refused: list[int]
) -> None:
    netlink_refused[0] = errno.ENOBUFS
    port = listening_at(sockets, "127.0.0.1")
    kernel = listening.LISTENERS
    assert kernel.listens(port, accepting("127.0.0.1")) is None
    assert kernel.usable
    netlink_refused[0] = 0
    assert local_listener("127.0.0.1", port)()
