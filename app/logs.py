"""The hub's log lines: one format for its own lines, gunicorn's and the access lines.

``[I 2026-12-06T23:55:14.751+00:00 26554 alice app.servers.manager] message``: the
level, the time with its offset, the process (with several workers: which one), the
user of the request being served (``-`` for none), the logger. Light on purpose: the
arbiter imports it (app/gunicorn_conf.py), and it imports no web framework.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, MutableMapping
from contextvars import ContextVar
from datetime import datetime
from typing import Any, ParamSpec, TypeVar
from urllib.parse import parse_qsl, urlencode

from gunicorn.glogging import Logger

LOG_FORMAT = "[%(levelname)1.1s %(asctime)s %(process)d %(user)s %(name)s] %(message)s"
# Where the web layer leaves the request's user for its access line.
USER_KEY = "flaskhub.user"
HEALTH_PATHS = frozenset({"/hub/health", "/hub/api/health"})
# Query arguments that carry credentials (JupyterHub scrubs the same): never logged.
SECRET_ARGS = ("token", "auth", "key", "code", "state", "xsrf", "password", "secret")

P = ParamSpec("P")
T = TypeVar("T")
WSGIApp = Callable[[dict[str, Any], Any], Iterable[bytes]]

# Each greenlet (gevent: one per connection, then per request) has its own value.
_user: ContextVar[str] = ContextVar("flaskhub_log_user", default="-")


def request_user() -> str:
    """The user of the request this code serves (what log lines say), or "-"."""
    return _user.get()


def set_request_user(name: str, environ: MutableMapping[str, Any] | None = None) -> None:
    """Say whom the request being served is from: on its log lines and its access line."""
    _user.set(name or "-")
    if environ is not None:
        environ[USER_KEY] = name or "-"


def carrying_user(call: Callable[P, T]) -> Callable[P, T]:
    """call, run later (in a greenlet of its own) with this request's user on its lines."""
    user = _user.get()

    def run(*args: P.args, **kwargs: P.kwargs) -> T:
        _user.set(user)
        return call(*args, **kwargs)

    return run


def user_per_request(wsgi_app: WSGIApp) -> WSGIApp:
    """WSGI middleware: each request starts with no user (a keep-alive connection's
    greenlet serves one request after another)."""

    def serve(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        _user.set("-")
        return wsgi_app(environ, start_response)

    return serve


class Formatter(logging.Formatter):
    """LOG_FORMAT, the time in ISO 8601 with milliseconds and the UTC offset."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        return datetime.fromtimestamp(record.created).astimezone().isoformat("T", "milliseconds")


class UserFilter(logging.Filter):
    """Gives each record the request's user, unless the record names one (access lines)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "user"):
            record.user = _user.get()
        return True


def configure(level: str) -> None:
    """Send every log line of this process, in LOG_FORMAT, to stderr (once per process)."""
    root = logging.getLogger()
    root.setLevel(level.upper())
    if any(isinstance(h.formatter, Formatter) for h in root.handlers):
        return
    handler = logging.StreamHandler()
    handler.setFormatter(Formatter(LOG_FORMAT))
    handler.addFilter(UserFilter())
    root.addHandler(handler)


class HubLogger(Logger):
    """gunicorn's logger (`logger_class`), writing its lines and the access lines in
    LOG_FORMAT; successful health checks are logged at DEBUG only, as JupyterHub does."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        # gunicorn's own handlers (and formats) go: the lines reach ours, on the root.
        for log in (self.error_log, self.access_log):
            for handler in [h for h in log.handlers if getattr(h, "_gunicorn", False)]:
                log.removeHandler(handler)
            log.propagate = True
        self.access_log.setLevel(self.loglevel)
        configure(cfg.loglevel)

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        """One line per request: cfg.access_log_format, the request's user in the prefix."""
        if not self.cfg.accesslog:
            return
        atoms = self.atoms(resp, req, environ, request_time)
        atoms["r"] = f"{environ['REQUEST_METHOD']} {scrub(environ['RAW_URI'])} {atoms['H']}"
        level = logging.DEBUG if _quiet(environ, str(atoms["s"])) else logging.INFO
        try:
            self.access_log.log(
                level,
                self.cfg.access_log_format,
                self.atoms_wrapper_class(atoms),
                extra={"user": environ.get(USER_KEY, "-")},
            )
        except Exception:
            self.exception("Could not write the access line")


def _quiet(environ: dict[str, Any], status: str) -> bool:
    """A successful health check: every few seconds forever, it says nothing new."""
    return environ.get("PATH_INFO") in HEALTH_PATHS and status.startswith("2")


def scrub(uri: str) -> str:
    """The URI with credentials replaced: the values of credential-like query arguments,
    and the token or cookie of /hub/api/authorizations/<kind>/<credential>."""
    path, sep, query = uri.partition("?")
    before, marker, rest = path.partition("/api/authorizations/")
    if marker and "/" in rest:
        path = f"{before}{marker}{rest.split('/', 1)[0]}/[secret]"
    if not sep:
        return path
    pairs = parse_qsl(query, keep_blank_values=True)
    if not any(_secret(k) for k, _ in pairs):
        return f"{path}?{query}"
    return path + "?" + urlencode([(k, "[secret]" if _secret(k) else v) for k, v in pairs])


def _secret(arg: str) -> bool:
    return any(word in arg.lower() for word in SECRET_ARGS)
