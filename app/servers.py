"""Domain: the spawn lifecycle of users' servers.

The database is the truth about every server's state; this module moves
servers between states and keeps in-memory handles (spawner objects, the
greenlet of a pending spawn or stop) only while they are needed.

``start_server`` has an outcome at every exit (``SpawnStatus``), each with
its HTTP status and message; finalisation of a spawn happens only in
``finish_spawn``; ``stop_server`` removes the route first, then the process,
then the state.
"""

from __future__ import annotations

import enum
import logging
import random
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

import gevent
import requests
from flask import Flask, current_app
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.db import Database
from app.models import OAuthClient, Server, ServerState, User, utcnow
from app.spawners import Spawner, SpawnerError, spawner_class
from app.users import UserService
from proxy.client import ProxyClient, ProxyError

log = logging.getLogger(__name__)

SLOW_STOP_TIMEOUT = 10.0
THROTTLE_RETRY_RANGE = (30, 60)


class SpawnStatus(enum.StrEnum):
    """The outcome of a call to start_server; the label of the spawn-duration histogram."""

    SUCCESS = "success"
    FAILURE = "failure"
    ALREADY_PENDING = "already-pending"
    THROTTLED = "throttled"
    TOO_MANY_USERS = "too-many-users"


class ServerError(Exception):
    """A request about a server that cannot be done: status, message, extra headers."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


@dataclass
class SpawnResult:
    """What start_server answers: 201 ready, 202 pending, or an error."""

    code: int
    message: str = ""
    status: SpawnStatus | None = None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return self.code == 201

    @property
    def pending(self) -> bool:
        return self.code == 202


class Recorder:
    """Where the lifecycle reports durations; the metrics module provides the real one."""

    def spawn(self, status: SpawnStatus, seconds: float) -> None:
        """One call of start_server ended (or its spawn, when it outlived the request)."""

    def proxy_add(self, ok: bool, seconds: float) -> None:
        """A route was added (or failed to be)."""

    def proxy_delete(self, ok: bool, seconds: float) -> None:
        """A route was deleted (or failed to be)."""

    def server_stop(self, ok: bool, seconds: float) -> None:
        """A server was stopped."""

    def server_poll(self, alive: bool, seconds: float) -> None:
        """A server was polled."""

    def check_routes(self, seconds: float) -> None:
        """The proxy's routes were reconciled with the database."""

    def proxy_poll(self, seconds: float) -> None:
        """The proxy's whole routing table was fetched."""


def url_prefix(user_name: str, server_name: str = "") -> str:
    """The URL prefix of a server: /user/<escaped name>/[<server>/]."""
    prefix = f"/user/{quote(user_name, safe='@~')}/"
    if server_name:
        prefix += f"{quote(server_name, safe='@~')}/"
    return prefix


def client_id(user_name: str, server_name: str = "") -> str:
    """The OAuth client id of a server, as JupyterHub names it."""
    cid = f"jupyterhub-user-{quote(user_name, safe='@~')}"
    return f"{cid}-{quote(server_name, safe='@~')}" if server_name else cid


def access_scopes(user_name: str, server_name: str = "") -> list[str]:
    """The scopes that grant access to a server (any one of them suffices)."""
    return [f"access:servers!server={user_name}/{server_name}", f"access:servers!user={user_name}"]


def state_counts(session: Session) -> dict[str, int]:
    """{active, pending, spawn_pending, stop_pending, ready}, computed from the rows now."""
    rows = session.execute(
        select(Server.state, func.count())
        .where(Server.state.in_([ServerState.SPAWNING, ServerState.STOPPING, ServerState.RUNNING]))
        .where((Server.state != ServerState.RUNNING) | Server.url.is_not(None))
        .group_by(Server.state)
    ).all()
    by_state = {state: n for state, n in rows}
    spawn = by_state.get(ServerState.SPAWNING, 0)
    stop = by_state.get(ServerState.STOPPING, 0)
    ready = by_state.get(ServerState.RUNNING, 0)
    return {
        "active": spawn + stop + ready,
        "pending": spawn + stop,
        "spawn_pending": spawn,
        "stop_pending": stop,
        "ready": ready,
    }


class ServerManager:
    """Starts, finishes, stops and polls servers; one per hub process."""

    def __init__(
        self,
        db: Database,
        settings: Any,
        users: UserService,
        proxy: ProxyClient,
        *,
        recorder: Recorder | None = None,
        http_get: Callable[..., requests.Response] | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.users = users
        self.proxy = proxy
        self.recorder = recorder or Recorder()
        self.spawner_cls = spawner_class(settings.spawner)
        self.http_get = http_get or requests.get
        # Handles, keyed by server id; the database stays the truth.
        self.spawners: dict[int, Spawner] = {}
        self.spawns: dict[int, gevent.Greenlet] = {}
        self.stops: dict[int, gevent.Greenlet] = {}
        self._live_spawners: weakref.WeakSet[Spawner] = weakref.WeakSet()

    # -- reading --------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        """State counts computed on request (drives limits and gauges)."""
        with self.db.read() as session:
            return state_counts(session)

    def get_server(self, user_name: str, server_name: str = "") -> Server | None:
        with self.db.read() as session:
            return _find_server(session, user_name, server_name)

    def live_spawner_count(self) -> int:
        """Spawner objects alive in this process (they exist only while needed)."""
        return len(self._live_spawners)

    def progress_events(self, server_id: int) -> list[dict[str, Any]]:
        """Progress the spawner reported so far (in the process that runs the spawn)."""
        spawner = self.spawners.get(server_id)
        return list(spawner.progress_events) if spawner else []

    # -- starting -------------------------------------------------------------

    def start_server(
        self, user_name: str, server_name: str = "", options: dict[str, Any] | None = None
    ) -> SpawnResult:
        """Start a server and wait up to slow_spawn_timeout for it.

        Exits: 400 pending stop / already running; 202 already pending; 429
        throttled (Retry-After) or too many users; 201 ready; 202 still
        starting; the failure's status (else 500) with its message.
        """
        t0 = time.monotonic()
        result, server_id = self._claim(user_name, server_name, options or {})
        if result is not None:
            if result.status is not None:
                self.recorder.spawn(result.status, time.monotonic() - t0)
            return result
        assert server_id is not None
        greenlet = gevent.spawn(self._spawn, server_id, t0)
        self.spawns[server_id] = greenlet
        greenlet.join(timeout=self.settings.slow_spawn_timeout)
        if not greenlet.dead:
            return SpawnResult(202, f"{user_name}'s server is starting")
        server = self.get_server(user_name, server_name)
        if server is not None and server.ready:
            return SpawnResult(201, f"{user_name}'s server is ready", SpawnStatus.SUCCESS)
        if server is not None and server.state == ServerState.FAILED:
            return SpawnResult(
                server.failure_status or 500, server.failure_message or "", SpawnStatus.FAILURE
            )
        # Cancelled by a stop while we waited.
        return SpawnResult(202, f"{user_name}'s server is stopping")

    def _claim(
        self, user_name: str, server_name: str, options: dict[str, Any]
    ) -> tuple[SpawnResult | None, int | None]:
        """Check the limits and mark the server spawning, in one write transaction.

        The spawn flag is set here, before the first wait, so a starting server
        is never neither pending nor ready.
        """
        with self.db.write() as session:
            user = session.scalar(select(User).where(User.name == user_name))
            if user is None:
                raise ServerError(404, f"No such user: {user_name}")
            server = user.server(server_name)
            if server is not None and server.state == ServerState.STOPPING:
                msg = f"{user_name} is pending stop"
                return SpawnResult(400, msg, SpawnStatus.ALREADY_PENDING), None
            if server is not None and server.state == ServerState.SPAWNING:
                msg = f"{user_name} is already pending spawn"
                return SpawnResult(202, msg, SpawnStatus.ALREADY_PENDING), None
            if server is not None and server.state == ServerState.RUNNING:
                return SpawnResult(400, f"{user_name}'s server is already running"), None
            refused = self._check_limits(state_counts(session))
            if refused is not None:
                return refused, None
            if server is None:
                server = Server(user=user, name=server_name)
                session.add(server)
            server.state = ServerState.SPAWNING
            server.url = None
            server.failure_message = server.stop_reason = None
            server.failure_status = None
            server.version = None
            server.user_options = options
            server.started = utcnow()
            session.flush()
            return None, server.id

    def _check_limits(self, counts: dict[str, int]) -> SpawnResult | None:
        limit = self.settings.concurrent_spawn_limit
        if limit and counts["spawn_pending"] >= limit:
            retry = random.randint(*THROTTLE_RETRY_RANGE)
            log.warning("%s pending spawns, throttling", counts["spawn_pending"])
            return SpawnResult(
                429,
                f"Too many users trying to log in right now. Try again in {retry} seconds.",
                SpawnStatus.THROTTLED,
                {"Retry-After": str(retry)},
            )
        active_limit = self.settings.active_server_limit
        if active_limit and counts["active"] >= active_limit:
            log.info("%s servers active, refusing another", counts["active"])
            return SpawnResult(
                429,
                "Active user limit exceeded. Try again in a few minutes.",
                SpawnStatus.TOO_MANY_USERS,
                {"Retry-After": str(random.randint(*THROTTLE_RETRY_RANGE))},
            )
        return None

    def _spawn(self, server_id: int, t0: float) -> None:
        """The spawn greenlet: start, wait for HTTP, then finish_spawn; record any failure."""
        spawner: Spawner | None = None
        status = SpawnStatus.FAILURE
        try:
            spawner = self._prepare_spawner(server_id)
            url = None
            with gevent.Timeout(self.settings.start_timeout, False):
                url = spawner.start()
            if url is None:
                raise SpawnerError(
                    f"Server did not start within {self.settings.start_timeout:g} seconds "
                    "(start_timeout)."
                )
            self._save_spawner_state(server_id, spawner)
            version = self._wait_for_http(spawner, url)
            self.finish_spawn(server_id, spawner, url, version)
            status = SpawnStatus.SUCCESS
        except gevent.GreenletExit:
            # Cancelled by stop_server, which takes it from here.
            if spawner is not None:
                _stop_quietly(spawner)
            raise
        except Exception as e:
            self._record_failure(server_id, spawner, e)
        finally:
            self.recorder.spawn(status, time.monotonic() - t0)
            self.spawns.pop(server_id, None)

    def _prepare_spawner(self, server_id: int) -> Spawner:
        """A new spawner with the JUPYTERHUB_* environment; issues the server's token."""
        with self.db.write() as session:
            server = session.get(Server, server_id)
            assert server is not None
            user = server.user
            prefix = url_prefix(user.name, server.name)
            cid = client_id(user.name, server.name)
            scopes = access_scopes(user.name, server.name)
            token, _row = self.users.create_token(
                user.id,
                note=f"Server at {prefix}",
                scopes=[*scopes, "identify", f"users:activity!user={user.name}"],
                server_id=server.id,
                session=session,
            )
            client = session.get(OAuthClient, cid) or OAuthClient(id=cid)
            client.secret_hash = _row.hashed
            client.redirect_uri = prefix + "oauth_callback"
            client.description = f"Server at {prefix}"
            client.server_id = server.id
            session.add(client)
            spawner = self._make_spawner(server)
        api_url = f"{self.settings.hub_url}/hub/api"
        spawner.env = {
            "JUPYTERHUB_API_TOKEN": token,
            "JUPYTERHUB_API_URL": api_url,
            "JUPYTERHUB_BASE_URL": "/",
            "JUPYTERHUB_SERVICE_PREFIX": prefix,
            "JUPYTERHUB_USER": user.name,
            "JUPYTERHUB_SERVER_NAME": server.name,
            "JUPYTERHUB_CLIENT_ID": cid,
            "JUPYTERHUB_OAUTH_CALLBACK_URL": prefix + "oauth_callback",
            "JUPYTERHUB_OAUTH_SCOPES": _json(scopes),
            "JUPYTERHUB_OAUTH_ACCESS_SCOPES": _json(scopes),
            "JUPYTERHUB_OAUTH_CLIENT_ALLOWED_SCOPES": "[]",
            "JUPYTERHUB_ACTIVITY_URL": f"{api_url}/users/{quote(user.name, safe='@~')}/activity",
            "JUPYTERHUB_HOST": "",
            "JUPYTERHUB_PUBLIC_URL": self.settings.public_url + prefix,
        }
        return spawner

    def _make_spawner(self, server: Server) -> Spawner:
        spawner = self.spawner_cls(
            user_name=server.user.name,
            server_name=server.name,
            service_prefix=url_prefix(server.user.name, server.name),
            settings=self.settings,
            user_options=server.user_options,
        )
        spawner.load_state(server.spawner_state or {})
        self.spawners[server.id] = spawner
        self._live_spawners.add(spawner)
        return spawner

    def spawner_for(self, server: Server) -> Spawner:
        """The handle on a server's process, rebuilt from its stored state if needed."""
        return self.spawners.get(server.id) or self._make_spawner(server)

    def _save_spawner_state(self, server_id: int, spawner: Spawner) -> None:
        # Stored at once, so a hub restart mid-spawn can still find the process.
        with self.db.write() as session:
            server = session.get(Server, server_id)
            if server is not None:
                server.spawner_state = spawner.get_state()

    def _wait_for_http(self, spawner: Spawner, url: str) -> str:
        """Wait until the server answers HTTP; return its X-JupyterHub-Version."""
        deadline = time.monotonic() + self.settings.http_timeout
        delay = 0.05
        while True:
            status = spawner.poll()
            if status is not None:
                raise SpawnerError(
                    f"Server of {spawner.user_name} exited with status {status} before it "
                    "answered. Its log may say why."
                )
            try:
                response = self.http_get(
                    url + spawner.service_prefix, timeout=2, allow_redirects=False
                )
                return self._server_version(response, url + spawner.service_prefix)
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise SpawnerError(
                    f"Server at {url}{spawner.service_prefix} didn't respond in "
                    f"{self.settings.http_timeout:g} seconds (http_timeout)."
                )
            gevent.sleep(delay)
            delay = min(delay * 2, 0.5)

    def _server_version(self, response: requests.Response, prefix_url: str) -> str:
        """The server's X-JupyterHub-Version; Jupyter Server omits it on the redirect
        its root answers with, but sends it from its unauthenticated `api` endpoint."""
        version = response.headers.get("X-JupyterHub-Version")
        if version is None and response.is_redirect:
            try:
                api = self.http_get(prefix_url + "api", timeout=2, allow_redirects=False)
                version = api.headers.get("X-JupyterHub-Version")
            except requests.RequestException:
                pass
        return version or "unknown"

    def finish_spawn(self, server_id: int, spawner: Spawner, url: str, version: str) -> None:
        """The one finalisation path: add the route, then mark the server running.

        If the route cannot be added the server is stopped and the spawn fails.
        If a stop claimed the server meanwhile, it wins: nothing is marked.
        """
        with self.db.read() as session:
            server = session.get(Server, server_id)
            assert server is not None
            user_name, server_name = server.user.name, server.name
        prefix = url_prefix(user_name, server_name)
        t0 = time.monotonic()
        try:
            self.proxy.add_route(
                prefix, url, {"user": user_name, "server_name": server_name, "jupyterhub": True}
            )
        except ProxyError as e:
            self.recorder.proxy_add(False, time.monotonic() - t0)
            _stop_quietly(spawner)
            raise SpawnerError(f"The proxy could not route {prefix} to the server: {e}") from e
        self.recorder.proxy_add(True, time.monotonic() - t0)
        with self.db.write() as session:
            server = session.get(Server, server_id)
            claimed = server is not None and server.state == ServerState.SPAWNING
            if claimed:
                assert server is not None
                server.state = ServerState.RUNNING
                server.url = url
                server.version = version
                server.spawner_state = spawner.get_state()
                server.last_activity = utcnow()
        if not claimed:
            # A stop (perhaps in another worker) took the server while it started:
            # undo what this spawn did, so no route or process outlives it.
            log.warning("Server of %s was stopped while starting; cleaning up", user_name)
            self._delete_route(prefix)
            _stop_quietly(spawner)
            raise SpawnerError(f"{user_name}'s server was stopped while it was starting.")
        log.info("Server of %s ready at %s (version %s)", user_name, url, version)

    def ensure_route(self, server: Server) -> bool:
        """Re-add a running server's route if the proxy lost it; True if it did."""
        prefix = url_prefix(server.user.name, server.name)
        if server.url is None or self.proxy.get_route(prefix) is not None:
            return False
        data = {"user": server.user.name, "server_name": server.name, "jupyterhub": True}
        self.proxy.add_route(prefix, server.url, data)
        log.warning("The proxy had no route for %s: re-added it (-> %s)", prefix, server.url)
        return True

    def _record_failure(self, server_id: int, spawner: Spawner | None, error: Exception) -> None:
        message = str(error) or type(error).__name__
        status = getattr(error, "status", 500)
        # A SpawnerError is an expected failure with a message; anything else is a bug.
        log.error(
            "Spawn of server %s failed: %s",
            server_id,
            message,
            exc_info=None if isinstance(error, SpawnerError) else error,
        )
        if spawner is not None:
            _stop_quietly(spawner)
        with self.db.write() as session:
            server = session.get(Server, server_id)
            if server is None:
                return
            if server.state == ServerState.SPAWNING:
                server.state = ServerState.FAILED
                server.failure_message = message
                server.failure_status = status
            server.url = None
            server.spawner_state = {}
            self.users.revoke_server_tokens(session, server)
        # A failed spawner is kept, with its error, until the failure is cleared.
        if spawner is not None:
            spawner.error = message

    def _drop_spawner(self, server_id: int) -> None:
        """Forget a server's handle once it stopped."""
        self.spawners.pop(server_id, None)

    def clear_failure(self, user_name: str, server_name: str = "") -> None:
        """Forget a failed spawn (an explicit request to try again)."""
        with self.db.write() as session:
            server = _find_server(session, user_name, server_name)
            if server is not None and server.state == ServerState.FAILED:
                server.state = ServerState.STOPPED
                server.failure_message = None
                server.failure_status = None
                self.spawners.pop(server.id, None)
            if server is not None:
                server.stop_reason = None

    def record_activity(
        self, user_id: int, when: datetime | None, servers: dict[str, datetime]
    ) -> None:
        """Move a user's and their servers' last_activity forward (never back)."""
        latest = max([t for t in (when, *servers.values()) if t is not None], default=None)
        with self.db.write() as session:
            user = session.get(User, user_id)
            if user is None or latest is None:
                return
            user.last_activity = _later(user.last_activity, latest)
            for server in user.servers:
                if server.name in servers:
                    server.last_activity = _later(server.last_activity, servers[server.name])

    # -- stopping -------------------------------------------------------------

    def stop_server(self, user_name: str, server_name: str = "") -> int:
        """Stop a server; 204 when stopped, 202 while still stopping.

        A pending spawn is cancelled first. Route, then process, then state.
        """
        with self.db.write() as session:
            server = _find_server(session, user_name, server_name)
            if server is None:
                return 204
            server_id = server.id
            if server.state == ServerState.STOPPING:
                return 202
            if server.state not in (ServerState.SPAWNING, ServerState.RUNNING):
                return 204
            server.state = ServerState.STOPPING
        spawn = self.spawns.pop(server_id, None)
        greenlet = gevent.spawn(self._stop, server_id, spawn)
        self.stops[server_id] = greenlet
        if spawn is not None:
            # Interrupting a spawn: the stop goes on in the background.
            return 202
        greenlet.join(timeout=SLOW_STOP_TIMEOUT)
        return 204 if greenlet.dead else 202

    def _stop(self, server_id: int, spawn: gevent.Greenlet | None = None) -> None:
        t0 = time.monotonic()
        ok = False
        try:
            if spawn is not None:
                log.warning("Cancelling the pending spawn of server %s to stop it", server_id)
                spawn.kill(block=True, timeout=5)
            with self.db.read() as session:
                server = session.get(Server, server_id)
                assert server is not None
            self._delete_route(url_prefix(server.user.name, server.name))
            self.spawner_for(server).stop()
            ok = True
        except Exception:
            log.exception("Stopping server %s failed", server_id)
        finally:
            self._mark_stopped(server_id, reason=None)
            self.recorder.server_stop(ok, time.monotonic() - t0)
            self.stops.pop(server_id, None)

    def _delete_route(self, prefix: str) -> None:
        t0 = time.monotonic()
        try:
            self.proxy.delete_route(prefix)
            self.recorder.proxy_delete(True, time.monotonic() - t0)
        except ProxyError as e:
            self.recorder.proxy_delete(False, time.monotonic() - t0)
            log.error("Could not delete route %s: %s (the route check will retry)", prefix, e)

    def _mark_stopped(self, server_id: int, reason: str | None) -> None:
        with self.db.write() as session:
            server = session.get(Server, server_id)
            if server is not None:
                server.state = ServerState.STOPPED
                server.url = None
                server.spawner_state = {}
                server.stop_reason = reason
                self.users.revoke_server_tokens(session, server)
                spawner = self.spawners.get(server_id)
                if spawner is not None:
                    spawner.clear_state()
        self._drop_spawner(server_id)

    def stop_all(self) -> None:
        """Stop every active server (hub shutdown with cleanup_servers)."""
        with self.db.read() as session:
            rows = session.execute(
                select(User.name, Server.name)
                .join(Server.user)
                .where(Server.state.in_([ServerState.RUNNING, ServerState.SPAWNING]))
            ).all()
        gevent.joinall([gevent.spawn(self.stop_server, u, s) for u, s in rows], timeout=30)

    # -- polling --------------------------------------------------------------

    def poll_server(self, server: Server) -> bool:
        """True if a running server is alive; if it died, clean up after it."""
        if server.state != ServerState.RUNNING:
            return False
        t0 = time.monotonic()
        spawner = self.spawner_for(server)
        status = spawner.poll()
        self.recorder.server_poll(status is None, time.monotonic() - t0)
        if status is None:
            return True
        log.warning("Server of %s exited on its own with status %s", server.user.name, status)
        self._delete_route(url_prefix(server.user.name, server.name))
        self._mark_stopped(
            server.id, reason=f"Your server stopped unexpectedly (exit status {status})."
        )
        return False

    def poll_all(self) -> None:
        """Poll every running server once."""
        with self.db.read() as session:
            servers = session.scalars(
                select(Server).where(Server.state == ServerState.RUNNING)
            ).all()
        for server in servers:
            if server.id not in self.spawns and server.id not in self.stops:
                self.poll_server(server)

    def recover(self) -> None:
        """After a hub restart: fail interrupted spawns, finish interrupted stops.

        Runs once, in `flaskhub run`, before any worker exists.
        """
        with self.db.read() as session:
            stuck = session.scalars(
                select(Server).where(Server.state.in_([ServerState.SPAWNING, ServerState.STOPPING]))
            ).all()
        for server in stuck:
            spawner = self.spawner_for(server)
            _stop_quietly(spawner)
            self._delete_route(url_prefix(server.user.name, server.name))
            if server.state == ServerState.SPAWNING:
                self._record_failure(
                    server.id,
                    None,
                    SpawnerError("The hub restarted while the server was starting."),
                )
            else:
                self._mark_stopped(server.id, reason=None)
            self._drop_spawner(server.id)
        self.poll_all()


def _find_server(session: Session, user_name: str, server_name: str) -> Server | None:
    return session.scalar(
        select(Server).join(Server.user).where(User.name == user_name, Server.name == server_name)
    )


def _later(a: datetime | None, b: datetime) -> datetime:
    return b if a is None or b > a else a


def _stop_quietly(spawner: Spawner) -> None:
    try:
        spawner.stop(now=True)
    except Exception:
        log.exception("Could not stop the server of %s", spawner.user_name)


def _json(value: Any) -> str:
    import json

    return json.dumps(value)


def init_app(app: Flask) -> None:
    """Create this process's ServerManager (and proxy client) on the app."""
    from app.db import get_db

    settings = app.config["FLASKHUB"]
    users = app.extensions["flaskhub.users"]
    proxy = ProxyClient(settings.proxy_api_url, settings.proxy_auth_token)
    recorder = app.extensions.get("flaskhub.recorder")
    app.extensions["flaskhub.proxy"] = proxy
    app.extensions["flaskhub.servers"] = ServerManager(
        get_db(app), settings, users, proxy, recorder=recorder
    )


def get_servers(app: Flask | None = None) -> ServerManager:
    """The ServerManager of the given or current app."""
    return (app or current_app).extensions["flaskhub.servers"]
