"""The steps of a spawn that need no handles: the claim, the limits, the server's
environment, and waiting for its HTTP. ServerManager strings them together."""

from __future__ import annotations

import json
import logging
import math
import random
import socket
import time
from collections.abc import Callable
from functools import partial
from http.client import HTTPConnection, HTTPException, HTTPSConnection
from ipaddress import ip_address
from typing import Any
from urllib.parse import quote, urlsplit

import gevent
import requests
from requests.structures import CaseInsensitiveDict
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session, joinedload, lazyload
from sqlalchemy.orm.attributes import set_committed_value

from app.config import Settings
from app.models import Server, ServerState, User, utcnow
from app.outcomes import Invalid, NotFound, Outcome, Result
from app.processes import this_process
from app.scopes import access_scopes
from app.servers.counts import state_counts
from app.servers.listening import local_listener
from app.servers.names import client_id, server_url, url_prefix
from app.servers.rows import forget_progress
from app.spawn_options import checked_options, option_fields
from app.spawners import Spawner, SpawnerError

log = logging.getLogger(__name__)

THROTTLE_RETRY_RANGE = (30, 60)
# A starting server is looked at every 20 ms at first, then at intervals of 5 % of the
# time it has taken so far, up to 100 ms: a server that is up waits for its next look
# (without which it is not used) at most 5 % of its start-up time, and one that starts
# for seconds is not looked at hundreds of times. Looks are cheap: listener.
HTTP_POLL_FIRST = 0.02
HTTP_POLL_SHARE = 0.05
HTTP_POLL_MAX = 0.1
# The user and their servers (not their groups and roles) in one statement, built once:
# the default (servers in a second SELECT, each joined to its user again) cost the ORM
# three loads per claim. A server's user is the one loaded here (the claim sets it).
_USER_WITH_SERVERS = (
    select(User)
    .where(User.name == bindparam("name"))
    .options(
        joinedload(User.servers).lazyload(Server.user),
        lazyload(User.groups),
        lazyload(User.roles),
    )
)


def claim(
    session: Session,
    settings: Settings,
    user_name: str,
    server_name: str,
    options: dict[str, Any] | None,
    *,
    explicit: bool,
) -> Result | Server:
    """Check the state and the limits, then mark the server spawning: a refusal, or the
    server (with its user's name and storage id: what the spawn needs, loaded here).

    One write transaction, so two requests cannot both start a server. The spawn
    flag is set here, before the first wait, so a starting server is never
    neither pending nor ready. Only an explicit request starts a failed server
    again; the failure is forgotten in this same transaction. Options None are those
    of the server's last start.
    """
    user = session.scalars(_USER_WITH_SERVERS, {"name": user_name}).unique().one_or_none()
    if user is None:
        raise NotFound(f"No such user: {user_name}")
    server = user.server(server_name)
    if server is not None:
        # Its user is the one just loaded: said here, or the first use of server.user
        # loads the user again, with their roles and groups (three statements).
        set_committed_value(server, "user", user)
    refused = _refusal(server, user_name, explicit)
    if refused is None and server is None and server_name:
        check_named_server_limit(settings, user)
    refused = refused or check_limits(settings, state_counts(session))
    if refused is not None:
        return refused
    if server is None:
        server = Server(user=user, name=server_name)
        session.add(server)
    else:
        forget_progress(session, server.id)
    server.state = ServerState.SPAWNING
    server.url = server.version = None
    server.failure_message = server.stop_reason = None
    server.failure_status = None
    if options is None:
        # Those of its last start, checked against today's settings like any others.
        fields = option_fields(settings.spawn_options)
        options = checked_options(fields, server.user_options or {})
    server.user_options = options
    server.started = utcnow()
    server.owner = this_process()
    session.flush()
    return server


def _refusal(server: Server | None, user_name: str, explicit: bool) -> Result | None:
    state = ServerState(server.state) if server is not None else ServerState.STOPPED
    if state == ServerState.STOPPING:
        return Result(Outcome.PENDING_STOP, f"{user_name} is pending stop")
    if state == ServerState.SPAWNING:
        return Result(Outcome.ALREADY_PENDING, f"{user_name} is already pending spawn")
    if state == ServerState.RUNNING:
        return Result(Outcome.ALREADY_RUNNING, f"{user_name}'s server is already running")
    if state == ServerState.FAILED and not explicit:
        assert server is not None
        return Result(
            Outcome.FAILED, server.failure_message or "Spawn failed.", None, server.failure_status
        )
    return None


def check_named_server_limit(settings: Settings, user: User) -> None:
    """`named_server_limit_per_user` counts every named server until it is removed."""
    limit = settings.named_server_limit_per_user
    if limit and sum(1 for s in user.servers if s.name) >= limit:
        raise Invalid(
            f"User {user.name} already has the maximum of {limit} named servers. "
            "One must be deleted before a new server can be created"
        )


def check_limits(settings: Settings, counts: dict[str, int]) -> Result | None:
    """THROTTLED or TOO_MANY_USERS (with a time to retry after), or None."""
    limit = settings.concurrent_spawn_limit
    if limit and counts["spawn_pending"] >= limit:
        retry = random.randint(*THROTTLE_RETRY_RANGE)
        log.warning("%s pending spawns, throttling", counts["spawn_pending"])
        return Result(
            Outcome.THROTTLED,
            f"Too many users trying to log in right now. Try again in {retry} seconds.",
            retry,
        )
    active_limit = settings.active_server_limit
    if active_limit and counts["active"] >= active_limit:
        log.info("%s servers active, refusing another", counts["active"])
        return Result(
            Outcome.TOO_MANY_USERS,
            "Active user limit exceeded. Try again in a few minutes.",
            random.randint(*THROTTLE_RETRY_RANGE),
        )
    return None


def spawner_env(
    settings: Settings, user_name: str, server_name: str, token: str, hub_url: str = ""
) -> dict[str, str]:
    """The JUPYTERHUB_* variables a server is started with (and nothing of the hub's);
    `hub_url` is the hub as the server reaches it (default the hub's own URL)."""
    prefix = url_prefix(user_name, server_name)
    url = server_url(settings.subdomain_host, user_name, server_name)
    scopes = json.dumps(access_scopes(user_name, server_name))
    api_url = f"{hub_url or settings.hub_url}/hub/api"
    return {
        "JUPYTERHUB_API_TOKEN": token,
        "JUPYTERHUB_API_URL": api_url,
        "JUPYTERHUB_BASE_URL": "/",
        "JUPYTERHUB_SERVICE_PREFIX": prefix,
        "JUPYTERHUB_USER": user_name,
        "JUPYTERHUB_SERVER_NAME": server_name,
        "JUPYTERHUB_CLIENT_ID": client_id(user_name, server_name),
        "JUPYTERHUB_OAUTH_CALLBACK_URL": url + "oauth_callback",
        "JUPYTERHUB_OAUTH_SCOPES": scopes,
        "JUPYTERHUB_OAUTH_ACCESS_SCOPES": scopes,
        "JUPYTERHUB_OAUTH_CLIENT_ALLOWED_SCOPES": "[]",
        "JUPYTERHUB_ACTIVITY_URL": f"{api_url}/users/{quote(user_name, safe='@~')}/activity",
        # With per-user origins the server sends browsers to the hub's own origin.
        "JUPYTERHUB_HOST": settings.subdomain_host.rstrip("/"),
        "JUPYTERHUB_PUBLIC_URL": url if settings.subdomain_host else settings.public_url + prefix,
    }


def direct_get(url: str, *, timeout: float, allow_redirects: bool = False) -> requests.Response:
    """GET a starting server's page as wait_for_http reads it (status and headers),
    never following a redirect, never through a proxy the environment names.

    The standard library's client: requests' own work per call (proxies looked
    up in os.environ, hooks, adapters) was most of the probe's cost at each spawn.
    Network errors are requests' ConnectionError, as for any other http_get.
    """
    if allow_redirects:
        raise ValueError("direct_get does not follow redirects")
    parts = urlsplit(url)
    connection_class = HTTPSConnection if parts.scheme == "https" else HTTPConnection
    connection = connection_class(parts.hostname or "", parts.port, timeout=timeout)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        connection.request("GET", target, headers={"Connection": "close"})
        answer = connection.getresponse()
        response = requests.Response()
        response.status_code = answer.status
        response.headers = CaseInsensitiveDict(answer.getheaders())
        response.url = url
        response._content = answer.read()
        return response
    except (OSError, HTTPException) as e:
        raise requests.ConnectionError(f"GET {url}: {e}") from e
    finally:
        connection.close()


def wait_for_http(
    spawner: Spawner, url: str, http_get: Callable[..., requests.Response], timeout: float
) -> str:
    """Wait until the server answers HTTP; return its X-JupyterHub-Version.

    Raises SpawnerError when its process exits first, or after `timeout` seconds.
    """
    started = time.monotonic()
    deadline = started + timeout
    prefix_url = url + spawner.service_prefix
    listens = listener(url)
    polled = -math.inf
    while True:
        if time.monotonic() - polled >= spawner.start_poll_seconds:
            polled = time.monotonic()
            status = spawner.poll()
            if status is not None:
                raise spawner.exit_error(status)
        if listens():
            try:
                response = http_get(prefix_url, timeout=2, allow_redirects=False)
                return _server_version(http_get, response, prefix_url)
            except requests.RequestException:
                pass
        now = time.monotonic()
        if now > deadline:
            raise SpawnerError(
                f"Server at {prefix_url} didn't respond in {timeout:g} seconds (http_timeout)."
            )
        gevent.sleep(look_again_in(now - started))


def look_again_in(waited: float) -> float:
    """Seconds until the next look at a server that has not answered in `waited` seconds."""
    return min(HTTP_POLL_MAX, max(HTTP_POLL_FIRST, waited * HTTP_POLL_SHARE))


def listener(url: str) -> Callable[[], bool]:
    """A look at whether anything accepts connections at the URL's host and port; the URL
    is read once, since a starting server is looked at dozens of times.

    A look costs a fraction of an HTTP request (at a local server, a fraction of a
    connection attempt: app.servers.listening), so a starting server can be looked
    at often (each wait between looks is time a ready server is not used) and asked
    over HTTP only once it listens.
    """
    try:
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return lambda: False
    try:
        address = ip_address(host)
    except ValueError:  # a name (a container's): resolved at each look, in gevent's pool
        address = None
    if address is not None and address.is_loopback:
        return local_listener(host, port)
    return partial(_connects, host, port)


def _connects(host: str, port: int) -> bool:
    """A connection to host:port (gevent's socket, which waits cooperatively) succeeds."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _server_version(
    http_get: Callable[..., requests.Response], response: requests.Response, prefix_url: str
) -> str:
    """The server's X-JupyterHub-Version; Jupyter Server omits it on the redirect
    its root answers with, but sends it from its unauthenticated `api` endpoint."""
    version = response.headers.get("X-JupyterHub-Version")
    if version is None and response.is_redirect:
        try:
            api = http_get(prefix_url + "api", timeout=2, allow_redirects=False)
            version = api.headers.get("X-JupyterHub-Version")
        except requests.RequestException:
            pass
    return version or "unknown"
