"""What a server's state means for a person visiting it: the one decision.

The spawn page, the spawn-pending page, the /hub/user/ redirects, the progress
stream and the proxy's error page all ask ``visit_of`` and present its answer
in their own way; none of them reads a server's state itself.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from functools import partial

from app.models import Server, ServerState
from app.servers.names import server_url


class Next(enum.StrEnum):
    """Where a visitor goes next."""

    GO = "go"  # ready: to the server
    WAIT = "wait"  # spawning: the pending page, with progress
    SHOW_FAILURE = "show-failure"  # the last spawn failed: its message, and Relaunch
    LAUNCH = "launch"  # stopped: a Launch button, or an implicit spawn
    WAIT_STOP = "wait-stop"  # stopping: try again in a moment


@dataclass(frozen=True)
class Visit:
    """The decision, with what presenting it needs."""

    next: Next
    #: The server's URL prefix (/user/<name>/[<server>/]).
    url: str
    #: Why it failed or stopped, or what is going on; for a person to read.
    message: str = ""
    #: The status a failed spawner asked to show.
    failure_status: int | None = None
    #: LAUNCH of a server that never failed nor stopped unexpectedly, with implicit_spawn on.
    implicit_spawn: bool = False
    #: The row the decision was made on (None: never started).
    server: Server | None = None
    #: Whose server, and which (the default one: "").
    user_name: str = ""
    server_name: str = ""


def visit_of(
    server: Server | None,
    user_name: str,
    server_name: str = "",
    *,
    implicit_spawn: bool,
    subdomain_host: str = "",
) -> Visit:
    """The decision for a server row (None when the server was never started)."""
    url = server_url(subdomain_host, user_name, server_name)
    decided = partial(Visit, user_name=user_name, server_name=server_name)
    state = ServerState(server.state) if server is not None else ServerState.STOPPED
    if server is not None and server.ready:
        return decided(Next.GO, url, server=server)
    if state == ServerState.SPAWNING:
        return decided(Next.WAIT, url, f"{user_name}'s server is starting", server=server)
    if state == ServerState.FAILED:
        assert server is not None
        return decided(
            Next.SHOW_FAILURE,
            url,
            server.failure_message or "Spawn failed.",
            server.failure_status,
            server=server,
        )
    if state == ServerState.STOPPING:
        message = f"{user_name}'s server is stopping. Try again in a moment."
        return decided(Next.WAIT_STOP, url, message, server=server)
    reason = server.stop_reason if server is not None else None
    return decided(
        Next.LAUNCH,
        url,
        reason or f"{user_name}'s server is not running.",
        implicit_spawn=implicit_spawn and not reason,
        server=server,
    )
