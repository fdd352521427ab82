"""The built-in single-user server: what `flaskhub singleuser` runs for each user.

It talks to the hub like JupyterHub's single-user servers do (environment variables in,
OAuth and the REST API over HTTP out) and imports nothing else from `app`. This module and
`config` use only the standard library, so that `main` can monkey-patch before `requests`
and the rest load.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from app.singleuser.config import ConfigError, settings_from_env

log = logging.getLogger(__name__)

LOG_FORMAT = "[%(levelname)1.1s %(asctime)s %(name)s] %(message)s"


def main(argv: list[str] | None = None) -> None:
    """Run the server from JupyterHub's environment until SIGTERM or SIGINT; exit 2 if unset."""
    from gevent import monkey

    monkey.patch_all()
    args, ignored = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO, format=LOG_FORMAT)
    if ignored:
        log.warning("Ignoring unsupported arguments: %s", " ".join(ignored))
    try:
        settings = settings_from_env(os.environ, port=args.port, ip=args.ip)
    except ConfigError as exc:
        print(f"flaskhub singleuser: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    from app.singleuser.serving import serve

    serve(settings)


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    """Parse the options spawners pass (`--port`, `--ip`, `--debug`); return the rest apart."""
    if argv is None:
        argv = sys.argv[1:]
        # `flaskhub singleuser ...` leaves its subcommand in sys.argv.
        if argv[:1] == ["singleuser"]:
            argv = argv[1:]
    parser = argparse.ArgumentParser(
        prog="flaskhub singleuser", description="Run a FlaskHub single-user server."
    )
    parser.add_argument("--port", type=_port_number, help="port to listen on")
    parser.add_argument("--ip", help="address to listen on")
    parser.add_argument("--debug", action="store_true", help="log at debug level")
    return parser.parse_known_args(argv)


def _port_number(value: str) -> int:
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise argparse.ArgumentTypeError(f"not a port number: {value!r}")
    return int(value)
