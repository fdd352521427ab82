"""gunicorn settings for the hub, derived from FlaskHub's settings.

Used as ``gunicorn -c python:app.gunicorn_conf 'app:create_app()'``; `flaskhub run`
does exactly that. The gevent worker patches after fork, before the app loads.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from app.config import load

_settings = load()


def _address(ip: str) -> str:
    return f"[{ip}]:{_settings.hub_port}" if ":" in ip else f"{ip}:{_settings.hub_port}"


def _container_ips() -> list[str]:
    """With the docker and swarm spawners: where servers reach the hub (a gateway of the host)."""
    # Only then: the Docker SDK would otherwise be imported before gevent patches.
    if _settings.spawner not in ("docker", "swarm"):
        return []
    from app.spawners import BUILTIN
    from app.spawners.docker import DockerSpawner

    spawner = BUILTIN[_settings.spawner]
    assert issubclass(spawner, DockerSpawner)
    return spawner.hub_connect_ips(_settings)


bind = [_address(ip) for ip in [_settings.hub_ip, *_container_ips()]]
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
accesslog = "-"
# The worker's pid: with several workers, which one served a request.
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(L)ss [worker %(p)s]'
proc_name = "flaskhub-hub"


def post_worker_init(worker: Any) -> None:
    """Start the reconcile loop in each worker (the lease elects one to run it)."""
    from app import background

    background.start(worker.wsgi)


def on_starting(server: Any) -> None:
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


def child_exit(server: Any, worker: Any) -> None:
    """Forget a dead worker's live gauges; its counters and histograms stay in the sums."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
