"""The progress stream of a spawn (server-sent events), for the default and named servers.

Any worker can serve it: the spawner's events are rows (each look asks for those
after the last one sent), and what the server's state means comes from the one
decision (``Visit``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import gevent
from flask import Response

from app.servers import Next, ServerManager

POLL_SECONDS = 0.25
MAX_SECONDS = 3600


def progress_response(servers: ServerManager, name: str, server_name: str = "") -> Response:
    """200 text/event-stream: "Server requested", the spawner's events, then ready or failed."""
    stream = _events(servers, name, server_name)
    response = Response(stream, mimetype="text/event-stream")
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"
    return response


def _events(servers: ServerManager, name: str, server_name: str) -> Iterator[str]:
    # A streamed body runs outside the app context: everything it needs is passed in.
    yield _event({"progress": 0, "message": "Server requested"})
    last, watching = 0, False
    deadline = time.monotonic() + MAX_SECONDS
    while time.monotonic() < deadline:
        visit, events = servers.watch(name, server_name, last)
        if watching or visit.next == Next.WAIT:
            # The last steps of a spawn we watched count too (a step, then its failure).
            yield from (_event(event) for _seq, event in events)
            last, watching = (events[-1][0] if events else last), True
        if visit.next != Next.WAIT or visit.server is None:
            yield _event(_last_event(visit.next, visit.url, visit.message, name))
            return
        gevent.sleep(POLL_SECONDS)


def _last_event(next_: Next, url: str, message: str, name: str) -> dict[str, Any]:
    if next_ == Next.GO:
        return {"progress": 100, "ready": True, "message": f"Server ready at {url}", "url": url}
    if next_ == Next.SHOW_FAILURE:
        return {"progress": 100, "failed": True, "message": f"Spawn failed: {message}"}
    return {
        "progress": 100,
        "failed": True,
        "message": f"Spawn failed: {name}'s server is not starting",
    }


def _event(data: dict[str, Any]) -> str:
    return f"data: {json.dumps(data)}\n\n"
