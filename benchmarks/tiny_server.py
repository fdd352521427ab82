"""The tiny single-user server of the side-by-side benchmark (standard library only).

Started by either hub as its spawner command (it reads JUPYTERHUB_SERVICE_URL
for its address, as JupyterHub >= 2 passes it) or directly with --port for the
physical limit. Any GET answers 200 with "tiny <user>", so a check through the
proxy knows the answer came from this user's server and not from the hub.
`--tag` only marks the command line, so the benchmark can find every server
it caused to start.

    python tiny_server.py [--port PORT] [--name NAME] [--tag RUN_ID]
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from urllib.parse import urlsplit


class Handler(BaseHTTPRequestHandler):
    """200 "tiny <name>" for any GET or HEAD; keep-alive."""

    protocol_version = "HTTP/1.1"
    body = b"tiny\n"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(self.body)

    do_HEAD = do_GET

    def log_message(self, format: str, *args: object) -> None:
        """Silent: a log line per request would cost more than the answer."""


def address(args: argparse.Namespace) -> tuple[str, int]:
    """--port wins, else the hub's JUPYTERHUB_SERVICE_URL."""
    if args.port:
        return "127.0.0.1", args.port
    url = urlsplit(os.environ["JUPYTERHUB_SERVICE_URL"])
    return url.hostname or "127.0.0.1", url.port or 8888


def stop(signum: int, frame: FrameType | None) -> None:
    """SIGINT (JupyterHub's first stop signal) and SIGTERM exit at once."""
    sys.exit(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--name", default=os.environ.get("JUPYTERHUB_USER", "direct"))
    parser.add_argument("--tag", default="")
    args, _hub_args = parser.parse_known_args()
    Handler.body = f"tiny {args.name}\n".encode()
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    server = ThreadingHTTPServer(address(args), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
