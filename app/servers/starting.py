"""Starting a server: limits, the spawn greenlet, waiting for HTTP, and ``finish_spawn``,
the one place a spawn is finalised."""

from __future__ import annotations

import json
import logging
import random
import time
from typing import Any
from urllib.parse import quote

import gevent
import requests
from sqlalchemy import select

from app.models import Server, ServerState, User, utcnow
from app.oauth import OAuthService
from app.servers.core import Handles, stop_quietly
from app.servers.naming import access_scopes, client_id, route_data, state_counts, url_prefix
from app.servers.outcomes import ServerError, SpawnResult, SpawnStatus
from app.spawners import Spawner, SpawnerError
from app.tokens import TokenService
from proxy.client import ProxyError

log = logging.getLogger(__name__)

THROTTLE_RETRY_RANGE = (30, 60)


class Starting(Handles):
    """start_server and everything a spawn does until the server is running or failed."""

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
            if server is None and server_name:
                self._check_named_server_limit(user)
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

    def _check_named_server_limit(self, user: User) -> None:
        """`named_server_limit_per_user` counts every named server until it is removed."""
        limit = self.settings.named_server_limit_per_user
        if limit and sum(1 for s in user.servers if s.name) >= limit:
            raise ServerError(
                400,
                f"User {user.name} already has the maximum of {limit} named servers. "
                "One must be deleted before a new server can be created",
            )

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
                stop_quietly(spawner)
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
            tokens = TokenService(self.db)
            token, row = tokens.create(
                user.id,
                note=f"Server at {prefix}",
                scopes=[*scopes, "identify", f"users:activity!user={user.name}"],
                server_id=server.id,
                session=session,
            )
            OAuthService(self.db, tokens).register_client(
                session,
                client_id=cid,
                secret_hash=row.hashed,
                redirect_uri=prefix + "oauth_callback",
                description=f"Server at {prefix}",
                server_id=server.id,
            )
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
            "JUPYTERHUB_OAUTH_SCOPES": json.dumps(scopes),
            "JUPYTERHUB_OAUTH_ACCESS_SCOPES": json.dumps(scopes),
            "JUPYTERHUB_OAUTH_CLIENT_ALLOWED_SCOPES": "[]",
            "JUPYTERHUB_ACTIVITY_URL": f"{api_url}/users/{quote(user.name, safe='@~')}/activity",
            "JUPYTERHUB_HOST": "",
            "JUPYTERHUB_PUBLIC_URL": self.settings.public_url + prefix,
        }
        return spawner

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
            self.proxy.add_route(prefix, url, route_data(user_name, server_name))
        except ProxyError as e:
            self.recorder.proxy_add(False, time.monotonic() - t0)
            stop_quietly(spawner)
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
            stop_quietly(spawner)
            raise SpawnerError(f"{user_name}'s server was stopped while it was starting.")
        log.info("Server of %s ready at %s (version %s)", user_name, url, version)

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
            stop_quietly(spawner)
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
            TokenService(self.db).revoke_for_server(session, server.id)
        # A failed spawner is kept, with its error, until the failure is cleared.
        if spawner is not None:
            spawner.error = message
