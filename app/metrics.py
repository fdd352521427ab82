"""Prometheus metrics: every metric object, its label enums, and the /hub/metrics view.

Names are JupyterHub's under the `metrics_prefix` setting (default
`jupyterhub`). Each app builds its metrics on a registry of its own, so
`create_app` can run twice in one process (tests, `flaskhub run`'s recovery).

Several gunicorn workers: `flaskhub run` gives gunicorn a PROMETHEUS_MULTIPROC_DIR,
so prometheus_client keeps counters and histograms in one file per process and
the scrape merges them, a restarted worker's counts included. Gauges of the
current state are never recorded: the view computes them from the database at
scrape time, so they can neither drift nor be summed across workers.
"""

from __future__ import annotations

import enum
import json
import logging
import math
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_flask_exporter import PrometheusMetrics
from prometheus_flask_exporter.multiprocess import GunicornInternalPrometheusMetrics

from app.auth.session import current_identity
from app.config import current_settings, get_settings
from app.handler_names import handler_name
from app.identity import Identity
from app.servers import Recorder, SpawnStatus, get_servers
from app.users import get_users

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
READ_METRICS = "read:metrics"
# JupyterHub's: the loop sampler wakes this often; lateness below it is not resolved.
EVENT_LOOP_RESOLUTION = 0.05
EVENT_LOOP_LOG_THRESHOLD = 1.0
# Set by `flaskhub run` for gunicorn (not FLASKHUB_*: that is a setting): when the run
# started and how long recovering servers took, for the first worker ready to observe.
STARTUP_ENV = "_FLASKHUB_STARTUP"
# Created by that first worker in the metrics directory (emptied at each start).
STARTUP_MARKER = "startup-observed"
EVENT_LOOP_BUCKETS = (
    *(0.05, 0.055, 0.06, 0.065, 0.07),  # 5 ms steps where a loop starts to feel slow
    *(0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, math.inf),
)

if TYPE_CHECKING:
    import gevent

log = logging.getLogger(__name__)
bp = Blueprint("metrics", __name__)


class Outcome(enum.StrEnum):
    """Label `status` of the proxy add/delete and server stop durations."""

    SUCCESS = "success"
    FAILURE = "failure"

    @classmethod
    def of(cls, ok: bool) -> Outcome:
        return cls.SUCCESS if ok else cls.FAILURE


class ServerPollStatus(enum.StrEnum):
    """Label `status` of the server poll duration: what the poll found."""

    RUNNING = "running"
    STOPPED = "stopped"


class ServerCount(enum.StrEnum):
    """Label `state` of `<prefix>_servers`: the keys of servers.state_counts (they overlap)."""

    ACTIVE = "active"
    PENDING = "pending"
    SPAWN_PENDING = "spawn_pending"
    STOP_PENDING = "stop_pending"
    READY = "ready"


@dataclass(frozen=True)
class Metrics:
    """One app's recorded metrics, on the registry of its prometheus-flask-exporter."""

    prefix: str
    exporter: Any  # PrometheusMetrics, or its gunicorn multiprocess variant
    SERVER_SPAWN_DURATION_SECONDS: Histogram
    PROXY_ADD_DURATION_SECONDS: Histogram
    PROXY_DELETE_DURATION_SECONDS: Histogram
    CHECK_ROUTES_DURATION_SECONDS: Histogram
    PROXY_POLL_DURATION_SECONDS: Histogram
    SERVER_POLL_DURATION_SECONDS: Histogram
    SERVER_STOP_SECONDS: Histogram
    HUB_STARTUP_DURATION_SECONDS: Histogram
    INIT_SPAWNERS_DURATION_SECONDS: Histogram
    EVENT_LOOP_INTERVAL_SECONDS: Histogram
    REQUEST_DURATION_SECONDS: Histogram

    def exposition(
        self, counts: dict[str, int], total_users: int, active: dict[str, int] | None = None
    ) -> str:
        """The text exposition: recorded metrics (merged across workers), then gauges of now."""
        # No Accept negotiation: two OpenMetrics documents cannot be concatenated.
        recorded, _content_type = self.exporter.generate_metrics()
        current = generate_latest(StateGauges(self.prefix, counts, total_users, active or {}))
        return str(recorded) + current.decode()


def make_metrics(prefix: str, spawn_buckets: Sequence[float]) -> Metrics:
    """Create the recorded metrics under prefix on a new registry, every label value at zero."""
    registry = CollectorRegistry()
    if os.environ.get(MULTIPROC_ENV):
        # Renders the files of every worker, whichever worker is scraped.
        exporter = GunicornInternalPrometheusMetrics.for_app_factory(
            path=None, export_defaults=False, registry=registry
        )
    else:
        exporter = PrometheusMetrics.for_app_factory(
            path=None, export_defaults=False, registry=registry
        )

    def histogram(
        name: str, doc: str, statuses: type[enum.StrEnum] | None = None, **kwargs: Any
    ) -> Histogram:
        labels = ("status",) if statuses else ()
        metric = Histogram(f"{prefix}_{name}", doc, labels, registry=registry, **kwargs)
        for status in statuses or ():
            metric.labels(status=status)
        return metric

    return Metrics(
        prefix=prefix,
        exporter=exporter,
        SERVER_SPAWN_DURATION_SECONDS=histogram(
            "server_spawn_duration_seconds",
            "Time taken by start_server, by outcome",
            SpawnStatus,
            buckets=spawn_buckets,
        ),
        PROXY_ADD_DURATION_SECONDS=histogram(
            "proxy_add_duration_seconds", "Time taken to add a route to the proxy", Outcome
        ),
        PROXY_DELETE_DURATION_SECONDS=histogram(
            "proxy_delete_duration_seconds", "Time taken to delete a route from the proxy", Outcome
        ),
        CHECK_ROUTES_DURATION_SECONDS=histogram(
            "check_routes_duration_seconds", "Time taken to reconcile the proxy's routes"
        ),
        PROXY_POLL_DURATION_SECONDS=histogram(
            "proxy_poll_duration_seconds", "Time taken to fetch all routes from the proxy"
        ),
        SERVER_POLL_DURATION_SECONDS=histogram(
            "server_poll_duration_seconds", "Time taken to poll a server", ServerPollStatus
        ),
        SERVER_STOP_SECONDS=histogram(
            "server_stop_seconds", "Time taken to stop a server", Outcome
        ),
        HUB_STARTUP_DURATION_SECONDS=histogram(
            "hub_startup_duration_seconds",
            "Time from `flaskhub run` to the first worker ready to serve",
        ),
        INIT_SPAWNERS_DURATION_SECONDS=histogram(
            "init_spawners_duration_seconds",
            "Time taken at start-up to recover the servers a previous hub left",
        ),
        EVENT_LOOP_INTERVAL_SECONDS=histogram(
            "event_loop_interval_seconds",
            "How late each worker's gevent loop wakes a sleeper (its responsiveness)",
            buckets=EVENT_LOOP_BUCKETS,
        ),
        REQUEST_DURATION_SECONDS=Histogram(
            f"{prefix}_request_duration_seconds",
            "Time taken to answer a request, by method, JupyterHub's handler name and status code",
            ("method", "handler", "code"),
            registry=registry,
        ),
    )


# JupyterHub's periods of jupyterhub_active_users.
ACTIVE_PERIODS: dict[str, timedelta] = {
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}


class StateGauges:
    """A collector of gauges computed at scrape time; nothing is recorded, so nothing sums."""

    def __init__(
        self, prefix: str, counts: dict[str, int], total_users: int, active: dict[str, int]
    ) -> None:
        self.prefix = prefix
        self.counts = counts
        self.total_users = total_users
        self.active = active

    def collect(self) -> Iterator[Metric]:
        prefix = self.prefix
        yield GaugeMetricFamily(
            f"{prefix}_running_servers",
            "Servers running and routed",
            value=self.counts[ServerCount.READY],
        )
        yield GaugeMetricFamily(f"{prefix}_total_users", "Users in the database", self.total_users)
        servers = GaugeMetricFamily(
            f"{prefix}_servers",
            "Servers by state (overlapping: active = pending + ready)",
            labels=["state"],
        )
        for state in ServerCount:
            servers.add_metric([state], self.counts[state])
        yield servers
        active = GaugeMetricFamily(
            f"{prefix}_active_users", "Users active within a period", labels=["period"]
        )
        for period in ACTIVE_PERIODS:
            active.add_metric([period], self.active.get(period, 0))
        yield active


class MetricsRecorder(Recorder):
    """The lifecycle's durations, observed in the histograms of a Metrics."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def spawn(self, status: SpawnStatus, seconds: float) -> None:
        self.metrics.SERVER_SPAWN_DURATION_SECONDS.labels(status=status).observe(seconds)

    def proxy_add(self, ok: bool, seconds: float) -> None:
        self.metrics.PROXY_ADD_DURATION_SECONDS.labels(status=Outcome.of(ok)).observe(seconds)

    def proxy_delete(self, ok: bool, seconds: float) -> None:
        self.metrics.PROXY_DELETE_DURATION_SECONDS.labels(status=Outcome.of(ok)).observe(seconds)

    def server_stop(self, ok: bool, seconds: float) -> None:
        self.metrics.SERVER_STOP_SECONDS.labels(status=Outcome.of(ok)).observe(seconds)

    def server_poll(self, alive: bool, seconds: float) -> None:
        status = ServerPollStatus.RUNNING if alive else ServerPollStatus.STOPPED
        self.metrics.SERVER_POLL_DURATION_SECONDS.labels(status=status).observe(seconds)

    def check_routes(self, seconds: float) -> None:
        self.metrics.CHECK_ROUTES_DURATION_SECONDS.observe(seconds)

    def proxy_poll(self, seconds: float) -> None:
        self.metrics.PROXY_POLL_DURATION_SECONDS.observe(seconds)


def _track_requests(app: Flask, metrics: Metrics) -> None:
    """Time every request by method, handler (app/handler_names.py) and status code."""
    # Around the whole dispatch rather than each view: answers from before_request
    # hooks (OPTIONS, CSRF refusals) and unmatched URLs count too. Our own wrapper
    # rather than the exporter's decorator, which inspected the signature of each
    # label function on every request (a quarter of the cost of a bare one).
    duration = metrics.REQUEST_DURATION_SECONDS
    dispatch = app.full_dispatch_request

    def timed_dispatch() -> Response:
        start = time.perf_counter()
        code = 500  # what Flask answers an exception that gets past dispatch with
        try:
            response = dispatch()
            code = response.status_code
            return response
        finally:
            elapsed = time.perf_counter() - start
            duration.labels(request.method, handler_name(request), code).observe(elapsed)

    app.full_dispatch_request = timed_dispatch  # type: ignore[method-assign]


def startup_env(started: float, init_spawners: float) -> dict[str, str]:
    """The environment `flaskhub run` gives gunicorn so a worker can observe the start-up."""
    return {STARTUP_ENV: json.dumps({"started": started, "init_spawners": init_spawners})}


def observe_startup(app: Flask) -> bool:
    """In the first worker ready after `flaskhub run`: observe the start-up durations, once."""
    raw, directory = os.environ.get(STARTUP_ENV), os.environ.get(MULTIPROC_ENV)
    if not raw or not directory:
        return False  # not started by `flaskhub run`
    try:
        # Exclusive: of several workers, and of restarted ones, only the first observes.
        os.close(os.open(Path(directory) / STARTUP_MARKER, os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        return False
    times = json.loads(raw)
    metrics: Metrics = app.extensions["flaskhub.metrics"]
    metrics.HUB_STARTUP_DURATION_SECONDS.observe(max(time.time() - times["started"], 0.0))
    metrics.INIT_SPAWNERS_DURATION_SECONDS.observe(times["init_spawners"])
    return True


def sample_event_loop(histogram: Histogram, resolution: float = EVENT_LOOP_RESOLUTION) -> NoReturn:
    """Sleep resolution again and again, observing how late each wake-up is (JupyterHub's)."""
    import gevent

    last = time.perf_counter()
    while True:
        gevent.sleep(resolution)
        now = time.perf_counter()
        tick, last = now - last, now
        # Below two resolutions the lateness is within what this sampling can tell.
        delay = resolution if tick < 2 * resolution else tick - resolution
        if delay >= EVENT_LOOP_LOG_THRESHOLD:
            log.warning("The event loop was unresponsive for at least %.2f s", delay)
        histogram.observe(delay)


def start_event_loop_sampler(app: Flask) -> gevent.Greenlet:
    """Sample this worker's loop lag into event_loop_interval_seconds (post_worker_init)."""
    import gevent

    metrics: Metrics = app.extensions["flaskhub.metrics"]
    return gevent.spawn(sample_event_loop, metrics.EVENT_LOOP_INTERVAL_SECONDS)


def may_read_metrics(identity: Identity) -> bool:
    """The credential holds read:metrics: an admin's, or one granted it (never a plain user's)."""
    return identity.has_scope(READ_METRICS)


def render(app: Flask) -> str:
    """The whole exposition of an app, with the state gauges computed now."""
    metrics: Metrics = app.extensions["flaskhub.metrics"]
    total, active = get_users(app).activity_counts(ACTIVE_PERIODS)
    return metrics.exposition(get_servers(app).counts(), total, active)


@bp.get("/hub/metrics")
@bp.get("/hub/api/metrics")
def metrics_view() -> Response:
    """Prometheus text format; needs admin or read:metrics unless authenticate_prometheus=false."""
    if current_settings().authenticate_prometheus and not may_read_metrics(current_identity()):
        message = f"Reading metrics requires the {READ_METRICS} scope (or an admin)."
        response = jsonify({"status": 403, "message": message})
        response.status_code = 403
        return response
    return Response(render(current_app), content_type=CONTENT_TYPE_PLAIN_0_0_4)


def init_app(app: Flask) -> None:
    """Build this app's metrics, time its requests, offer the recorder and the view.

    Runs before servers.init_app, which hands the recorder to the ServerManager.
    """
    settings = get_settings(app)
    metrics = make_metrics(settings.metrics_prefix, settings.spawn_duration_buckets)
    _track_requests(app, metrics)
    app.extensions["flaskhub.metrics"] = metrics
    app.extensions["flaskhub.recorder"] = MetricsRecorder(metrics)
    app.register_blueprint(bp)
