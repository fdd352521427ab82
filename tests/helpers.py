"""Small helpers shared by tests."""

import contextlib
import socket
from typing import Any


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_ports(count: int) -> list[int]:
    """Return count distinct free ports (free_port() twice can return the same one)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]


def header_values(response: Any, name: str) -> list[str]:
    """Every value a response sent under name, matched case-insensitively (duplicates too)."""
    return [value for key, value in response.headers.items() if key.lower() == name.lower()]
