"""gunicorn settings for the hub, derived from FlaskHub's settings, and its hooks.

Used as ``gunicorn -c python:app.gunicorn_conf 'app:create_app()'``; `flaskhub run`
prepares and then becomes exactly that (adding a bind per address containers reach
the hub on). The arbiter starts and supervises CHP (unless proxy_auto_start is
false) and the managed services and, at exit, stops them and user servers
(app/supervisor.py). The gevent
worker patches after fork, before the app loads.
"""

from __future__ import annotations

import gc
import os
import signal
from pathlib import Path
from typing import Any

from app import supervisor
from app.config import load, resolve_secrets
from app.services.processes import ServiceProcess
from proxy.launcher import ProxyProcess

_settings = load()
_proxy: ProxyProcess | None = None
# Made before the workers fork: what a draining arbiter reads (drain_seconds).
_requests = supervisor.RequestClock()
_services: list[ServiceProcess] = []


def _address(ip: str) -> str:
    return f"[{ip}]:{_settings.hub_port}" if ":" in ip else f"{ip}:{_settings.hub_port}"


bind = [_address(_settings.hub_ip)]
if _settings.hub_socket:
    bind.append(f"unix:{_settings.hub_socket}")
# gunicorn would take X-Forwarded-Proto from any 127.0.0.1 peer, a user's server included:
# app.forwarded decides whom to believe (it always believes its Unix socket).
forwarded_allow_ips = ""
workers = _settings.workers
worker_class = "gevent"
# CHP keeps idle keep-alive connections to the hub; they count here.
worker_connections = 1000
# Event streams of the progress page would hold a graceful stop for long.
graceful_timeout = 5
timeout = 60
# gunicorn >= 25 opens a control socket per user; several hubs on one host fight over it.
control_socket_disable = True
loglevel = _settings.log_level.lower()
# A line per request is information: logged at DEBUG and INFO, as JupyterHub does.
accesslog = "-" if loglevel in ("debug", "info") else None
# After app.logs.LOG_FORMAT's prefix (time, worker pid, the request's user).
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(L)ss'
# Its lines and the access lines in the hub's one format; no health check when it passes.
logger_class = "app.logs.HubLogger"
proc_name = "flaskhub-hub"


def post_worker_init(worker: Any) -> None:
    """Start the reconcile loop (the lease elects one worker to run it) and the loop-lag
    sampler in each worker; the first worker ready observes the start-up durations."""
    from app import background, metrics

    # Ctrl-C in a terminal signals the whole process group: the arbiter, which then stops
    # each worker (SIGQUIT), and each worker itself. A worker told twice quits twice: the
    # second quit's exit lands while the first is already ending the worker, and gevent
    # prints its traceback. The arbiter's word is enough, so a worker ignores SIGINT.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # What start-up made lives as long as the worker: no collection needs to visit it.
    gc.freeze()
    metrics.observe_startup(worker.wsgi)
    metrics.start_event_loop_sampler(worker.wsgi)
    background.start(worker.wsgi)


def pre_request(worker: Any, req: Any) -> None:
    """Note the time of each request but the container's own health check (from
    loopback), for the drain to tell when the proxies have stopped sending requests."""
    if req.path != "/hub/health" or not _from_loopback(req.peer_addr):
        _requests.tick()


def _from_loopback(peer: Any) -> bool:
    host = peer[0] if isinstance(peer, tuple) and peer else ""
    return host in ("127.0.0.1", "::1") or host.startswith("127.")


def post_request(worker: Any, req: Any, environ: Any, resp: Any) -> None:
    """Let other connections' greenlets run before this keep-alive connection's next
    request: without it one busy connection is served again and again while the others
    wait (p99 of seconds at 32 connections, PITFALLS.md)."""
    import gevent

    gevent.sleep(0)


def on_starting(server: Any) -> None:
    """Reset the metrics, start CHP and the managed services."""
    global _proxy, _services
    _reset_metrics(server)
    if _settings.proxy_auto_start:
        _proxy = supervisor.start_proxy(resolve_secrets(_settings))
    # With secrets: a managed service declared without api_token gets its token there.
    _services = supervisor.start_services(resolve_secrets(_settings))


def when_ready(server: Any) -> None:
    """Say where to open the hub once a worker answers; with drain_seconds, answer SIGTERM
    by serving that long first."""
    supervisor.announce_when_ready(_settings)
    if _settings.drain_seconds > 0:
        supervisor.drain_on_term(server.signal, _settings.drain_seconds, _requests)


def on_exit(server: Any) -> None:
    """Stop the managed services, user servers (cleanup_servers) and CHP after the workers."""
    supervisor.shut_down(resolve_secrets(_settings), _proxy, _services)


def _reset_metrics(server: Any) -> None:
    """Empty the metrics directory (multiprocess mode): a new hub counts from zero."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not path:
        if workers > 1:
            server.log.warning(
                "PROMETHEUS_MULTIPROC_DIR is not set: each worker reports its own metrics "
                "(`flaskhub run` sets it)"
            )
        return
    Path(path).mkdir(parents=True, exist_ok=True)
    # Only prometheus_client's own files: the directory may be the operator's.
    for kind in ("counter", "gauge", "histogram", "summary"):
        for stale in Path(path).glob(f"{kind}_*.db"):
            stale.unlink()
    # The first worker ready observes the start-up (app.metrics.observe_startup).
    (Path(path) / "startup-observed").unlink(missing_ok=True)


def child_exit(server: Any, worker: Any) -> None:
    """Forget a dead worker's live gauges; its counters and histograms stay in the sums."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def pre_fork(server: Any, worker: Any) -> None:
    """Freeze the arbiter's objects before a worker forks from it: the worker's collector
    then never visits them, so it never writes to, and copies, the pages they share."""
    gc.freeze()
