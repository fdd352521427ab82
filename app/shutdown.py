"""Shutting the hub down on request (POST /hub/api/shutdown): what to stop, then the signal.

A worker cannot stop the hub by itself: gunicorn's arbiter (the `flaskhub run`
process) stops the workers and then, in its exit hook, user servers and CHP.
The worker leaves what was asked in a file the exit hook reads, and sends the
arbiter SIGTERM (a graceful stop: requests under way are answered).
"""

from __future__ import annotations

import json
import logging
import os
import signal
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

REQUEST_FILE = "shutdown-request.json"


@dataclass(frozen=True)
class ShutdownRequest:
    """What a shutdown stops besides the hub (JupyterHub's body of POST /shutdown)."""

    servers: bool
    proxy: bool


def request_shutdown(data_dir: str, wanted: ShutdownRequest, *, by: str) -> None:
    """Record what to stop, then ask the arbiter (this worker's parent) to stop."""
    path = Path(data_dir) / REQUEST_FILE
    path.write_text(json.dumps({"servers": wanted.servers, "proxy": wanted.proxy}))
    log.warning(
        "Shutdown requested by %s (servers: %s, proxy: %s)", by, wanted.servers, wanted.proxy
    )
    os.kill(os.getppid(), signal.SIGTERM)


def take_request(data_dir: str) -> ShutdownRequest | None:
    """The shutdown asked for through the API, if one was (read once, then removed)."""
    path = Path(data_dir) / REQUEST_FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    path.unlink(missing_ok=True)
    return ShutdownRequest(bool(data.get("servers")), bool(data.get("proxy")))
