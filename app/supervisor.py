"""What gunicorn's arbiter does for `flaskhub run`, through its hooks (app/gunicorn_conf.py).

`flaskhub run` prepares (migrations, admins, recovery) and then becomes the
arbiter, so the hub is two kinds of process only: the arbiter, which starts and
supervises CHP, says when the hub serves, and at exit stops user servers and
CHP; and its workers. The arbiter imports neither Flask nor an HTTP library
until exit: it stays small, and its workers, which fork from it and then
monkey-patch, find no ssl or sockets in use.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.config import Settings
from app.services.processes import ServiceProcess
from app.services.specs import service_env, spec_from
from app.shutdown import take_request
from proxy.launcher import ProxyProcess, ProxyStartError, http_get

log = logging.getLogger("flaskhub")

READY_TIMEOUT = 60.0


def start_proxy(settings: Settings) -> ProxyProcess:
    """Start CHP and supervise it; exit with the reason if it cannot start."""
    log_file = Path(settings.data_dir) / "logs" / "proxy.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    proxy = ProxyProcess(
        ip=settings.ip,
        port=settings.port,
        api_ip="127.0.0.1",
        api_port=settings.proxy_api_port,
        # Over the hub's Unix socket: the one way in where X-Forwarded-For is believed.
        default_target=settings.proxy_target,
        error_target=f"{settings.hub_connect_url}/hub/error",
        auth_token=settings.proxy_auth_token,
        log_file=str(log_file),
        host_routing=bool(settings.subdomain_host),
    )
    try:
        proxy.start()
    except ProxyStartError as e:
        print(f"Error: {e}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None
    proxy.supervise()
    log.info("configurable-http-proxy (pid %s) on %s", proxy.pid, settings.public_url)
    return proxy


def start_services(settings: Settings) -> list[ServiceProcess]:
    """Start the managed services (those of `services` with a `command`) and supervise them."""
    started = []
    for entry in settings.services:
        spec = spec_from(entry)
        if not spec.managed:
            continue
        env = service_env(spec, hub_url=settings.hub_url, public_url=settings.public_url)
        process = ServiceProcess(spec, env, settings.data_dir)
        process.start()
        started.append(process)
    return started


# After drain_seconds, a draining hub stops once no request came for this long...
DRAIN_QUIET_SECONDS = 1.0
# ...or at this many times drain_seconds, requests or not.
DRAIN_LONGEST = 3


class RequestClock:
    """When a worker last took a request from others (shared memory: the arbiter makes it
    before it forks the workers, which note each request; a store, no lock)."""

    def __init__(self) -> None:
        self._last = multiprocessing.RawValue("d", 0.0)

    def tick(self) -> None:
        self._last.value = time.monotonic()

    def quiet_for(self) -> float:
        """Seconds since the last request noted."""
        return time.monotonic() - self._last.value


def drain_on_term(stop: Callable[[int, Any], None], seconds: float, clock: RequestClock) -> None:
    """On SIGTERM, go on serving for `seconds`, and after that while requests still come,
    then stop (stop(signum, frame): the arbiter's own handler). A replica leaving a
    swarm's DNS still gets requests from the nodes the news has not reached yet, and a
    busy swarm can take longer than `seconds` to tell them all; a second SIGTERM stops it
    at once."""

    def drain(signum: int, frame: Any) -> None:
        log.info("Stopping in %g s (drain_seconds), or once requests stop after that", seconds)
        signal.signal(signal.SIGTERM, stop)
        threading.Thread(target=wait, args=(signum, frame), name="drain", daemon=True).start()

    def wait(signum: int, frame: Any) -> None:
        time.sleep(seconds)
        waited = seconds
        while clock.quiet_for() < DRAIN_QUIET_SECONDS and waited < seconds * DRAIN_LONGEST:
            time.sleep(0.1)
            waited += 0.1
        if clock.quiet_for() < DRAIN_QUIET_SECONDS:
            log.warning("Still getting requests after %g s of drain: stopping", waited)
        else:
            log.info(
                "No request for %g s after %g s of drain: stopping", DRAIN_QUIET_SECONDS, waited
            )
        stop(signum, frame)

    signal.signal(signal.SIGTERM, drain)


def announce_when_ready(settings: Settings) -> None:
    """Say, once a worker answers, where to open the hub (in a thread: the arbiter goes on)."""

    def wait() -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if http_get(settings.hub_ip, settings.hub_port, "/hub/health")[0] == 200:
                print(
                    f"FlaskHub is running: open {settings.public_url}/ (Ctrl-C to stop)", flush=True
                )
                return
            time.sleep(0.05)
        log.error("The hub did not answer on %s within %g s", settings.hub_url, READY_TIMEOUT)

    threading.Thread(target=wait, name="announce", daemon=True).start()


def shut_down(
    settings: Settings, proxy: ProxyProcess | None, services: list[ServiceProcess]
) -> None:
    """After the workers stopped: managed services, user servers (unless
    cleanup_servers=false, or a shutdown through the API said otherwise), then CHP."""
    for service in services:
        service.stop()

    asked = take_request(settings.data_dir)
    if asked.servers if asked is not None else settings.cleanup_servers:
        from app import create_app
        from app.servers import get_servers

        get_servers(create_app()).stop_all()
    if proxy is not None:
        proxy.stop()
    print("FlaskHub stopped.", flush=True)
