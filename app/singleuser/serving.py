"""Serve the single-user app with gevent until SIGTERM or SIGINT."""

from __future__ import annotations

import logging
import signal

import gevent
from gevent.event import Event
from gevent.pywsgi import WSGIServer

from app.singleuser.activity import run_activity_loop
from app.singleuser.config import SingleUserSettings
from app.singleuser.server import create_app
from app.singleuser.services import EXTENSION, Services

log = logging.getLogger(__name__)

SHUTDOWN_TIMEOUT = 5


def serve(settings: SingleUserSettings) -> None:
    """Listen on the settings' host and port, report activity, stop cleanly on a signal."""
    app = create_app(settings)
    svc: Services = app.extensions[EXTENSION]
    server = WSGIServer(
        (settings.listen_host, settings.listen_port),
        app,
        log=logging.getLogger("app.singleuser.access"),
        error_log=log,
    )
    stopping = Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(signum, stopping.set)
    server.start()
    log.info("FlaskHub single-user server for %s at %s", settings.user, settings.public_url)
    reporter = gevent.spawn(run_activity_loop, svc.tracker, gevent.sleep)
    stopping.wait()
    log.info("Stopping the single-user server for %s", settings.user)
    reporter.kill()
    server.stop(timeout=SHUTDOWN_TIMEOUT)
    svc.hub.close()
