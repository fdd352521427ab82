"""The ServerManager: one per hub process, the one owner of the lifecycle's handles.

Read top to bottom: reading state, starting (claim, the spawn greenlet,
``finish_spawn``, the one place a spawn is finalised), stopping (route first,
then the process, then the state), watching (polls, the route check, activity,
recovery after a restart), and the handles. The database is the truth about
every server; spawner objects and greenlets are handles kept only while needed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import gevent
import requests

from app.config import Settings
from app.db import DATABASE_DOWN, Database, when_reachable
from app.heartbeats import DEAD_AFTER_SECONDS, Heartbeats
from app.logs import carrying_user, request_user
from app.models import Server, ServerState, User, utcnow
from app.outcomes import Outcome, Result
from app.processes import describe, process_alive, this_process
from app.servers.counts import state_counts
from app.servers.edits import ServerEdits
from app.servers.names import server_label, server_url, url_prefix
from app.servers.progress import ProgressWriter
from app.servers.recorder import SpawnStatus
from app.servers.routes import Routes
from app.servers.rows import Progress, ServerRows
from app.servers.spawning import claim, direct_get, spawner_env, wait_for_http
from app.servers.visit import Next, Visit, visit_of
from app.spawn_options import checked_options, option_fields, settings_for
from app.spawners import Spawner, SpawnerError, spawner_class
from app.users import UserService
from proxy.client import ProxyError

log = logging.getLogger(__name__)

SLOW_STOP_TIMEOUT = 10.0
# The hub's own steps of every spawn on the progress bar, after the spawner's (below 90).
LISTENING_PROGRESS = 90
ROUTED_PROGRESS = 95
# The spawners' progress steps reported within this long of each other go in one write
# (app.servers.progress); a bar moving 50 ms later is not seen.
PROGRESS_GATHER_SECONDS = 0.05
REMOVE_WAIT_SECONDS = 120.0
# A spawn or stop owned by a process whose life cannot be checked (another host) is
# taken as abandoned once it outlived its own timeouts by this much.
ABANDONED_AFTER_SECONDS = 60.0
# A spawn taken over with none of its http_timeout left still gets this long a look.
TAKEN_OVER_LOOK_SECONDS = 2.0
DATABASE_DOWN_DURING_SPAWN = (
    "The hub's database was unreachable while the server was starting. Start it again."
)


class ServerManager:
    """Starts, finishes, stops and polls servers; one per hub process."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        *,
        users: UserService,
        rows: ServerRows,
        routes: Routes,
        http_get: Callable[..., requests.Response] | None = None,
        auth_state_for: Callable[[str, Callable[[], bool]], dict[str, Any] | None] | None = None,
        heartbeats: Heartbeats | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.users = users
        self.rows = rows
        self.routes = routes
        self.recorder = routes.recorder
        self.spawner_cls = spawner_class(settings.spawner)
        self.http_get = http_get or direct_get
        # A user's auth state for their spawner, refreshed when stale (app.auth.state);
        # it raises LoginExpired when the user must log in again.
        self.auth_state_for = auth_state_for
        self.heartbeats = heartbeats or Heartbeats(db)
        # JupyterHub 6's PUT and PATCH of a server that is not running.
        self.edits = ServerEdits(db, settings)
        self.progress = ProgressWriter(rows.add_progress, PROGRESS_GATHER_SECONDS)
        # Handles, keyed by server id.
        self.spawners: dict[int, Spawner] = {}
        self.spawns: dict[int, gevent.Greenlet] = {}
        self.stops: dict[int, gevent.Greenlet] = {}

    # -- reading -------------------------------------------------------------

    def get_server(self, user_name: str, server_name: str = "") -> Server | None:
        return self.rows.get(user_name, server_name)

    def servers_of(self, user_name: str) -> list[Server]:
        """Every server a user has (the default one, if ever started, first)."""
        return list(self.rows.of_user(user_name))

    def visit(self, user_name: str, server_name: str = "", *, poll: bool = True) -> Visit:
        """What the server's state means for a visitor; `poll` first notices a dead server."""
        server = self.get_server(user_name, server_name)
        if poll and server is not None and not self.poll_server(server):
            server = self.get_server(user_name, server_name)
        return visit_of(
            server,
            user_name,
            server_name,
            implicit_spawn=self.settings.implicit_spawn,
            subdomain_host=self.settings.subdomain_host,
        )

    def visit_after(self, result: Result, user_name: str, server_name: str = "") -> Visit:
        """What a server means for its visitor after start_server answered `result`: a
        READY one is at its URL (marked running just now: not read again)."""
        if result.outcome != Outcome.READY:
            return self.visit(user_name, server_name, poll=False)
        url = server_url(self.settings.subdomain_host, user_name, server_name)
        return Visit(Next.GO, url, user_name=user_name, server_name=server_name)

    def watch(self, user_name: str, server_name: str, after: int) -> tuple[Visit, Progress]:
        """What the server's state means (as `visit` without polling) and its spawn's
        progress events after seq `after`: one read, for a progress stream's look."""
        server, events = self.rows.watch(user_name, server_name, after)
        visit = visit_of(
            server,
            user_name,
            server_name,
            implicit_spawn=self.settings.implicit_spawn,
            subdomain_host=self.settings.subdomain_host,
        )
        return visit, events

    def counts(self) -> dict[str, int]:
        """State counts computed on request (drives limits and gauges)."""
        with self.db.read() as session:
            return state_counts(session)

    # -- starting ------------------------------------------------------------

    def start_server(
        self,
        user_name: str,
        server_name: str = "",
        options: dict[str, Any] | None = None,
        *,
        explicit: bool = True,
    ) -> Result:
        """Start a server and wait up to slow_spawn_timeout for it.

        Outcomes: PENDING_STOP, ALREADY_PENDING, ALREADY_RUNNING, THROTTLED and
        TOO_MANY_USERS (with retry_after) refuse; READY; PENDING (still
        starting); FAILED with the spawner's message (and status to show);
        STOPPING when a stop cancelled it meanwhile. An implicit start
        (`explicit=False`) of a failed server answers its failure instead.
        Options None are those of the server's last start (none for a new server).
        Raises NotFound for an unknown user, Invalid past the named-server limit or for
        options that are not valid,
        LoginExpired when the user's login must be renewed first (auth_refresh_age).
        """
        t0 = time.monotonic()
        if options is not None:
            options = checked_options(option_fields(self.settings.spawn_options), options)
        auth_state = self._auth_state(user_name, server_name)
        with self.db.write() as session:
            claimed = claim(
                session, self.settings, user_name, server_name, options, explicit=explicit
            )
            if not isinstance(claimed, Result):
                # In the claim's transaction: one write fewer per spawn.
                token = self.rows.issue_credentials(session, claimed)
        if isinstance(claimed, Result):
            label = SpawnStatus.of_refusal(claimed.outcome)
            if label is not None:
                self.recorder.spawn(label, time.monotonic() - t0)
            return claimed
        # Its lines say whose request started it.
        greenlet = gevent.spawn(carrying_user(self._spawn), claimed, token, t0, auth_state)
        self.spawns[claimed.id] = greenlet
        greenlet.join(timeout=self.settings.slow_spawn_timeout)
        if not greenlet.dead:
            return Result(Outcome.PENDING, f"{user_name}'s server is starting")
        if greenlet.value is SpawnStatus.SUCCESS:
            # Marked running and routed just now: no need to read it back.
            return Result(Outcome.READY, f"{user_name}'s server is ready")
        now = self.get_server(user_name, server_name)
        if now is not None and now.ready:
            return Result(Outcome.READY, f"{user_name}'s server is ready")
        if now is not None and now.state == ServerState.FAILED:
            return Result(Outcome.FAILED, now.failure_message or "", None, now.failure_status)
        return Result(Outcome.STOPPING, f"{user_name}'s server is stopping")

    def _auth_state(self, user_name: str, server_name: str) -> dict[str, Any] | None:
        """The user's auth state, refreshed if stale: before the claim, since a refresh asks
        the identity provider (network, no transaction); not for a server already active
        (the claim refuses it), which is read only when a refresh is due."""
        if self.auth_state_for is None:
            return None

        def inactive() -> bool:
            current = self.get_server(user_name, server_name)
            return current is None or not current.active

        return self.auth_state_for(user_name, inactive)

    def _spawn(
        self, server: Server, token: str, t0: float, auth_state: dict[str, Any] | None = None
    ) -> SpawnStatus:
        """The spawn greenlet: start, wait for HTTP, then finish_spawn; record any failure.
        Returns how it ended (SUCCESS: the server is running and routed)."""
        server_id = server.id
        label = server_label(server.user.name, server.name)
        spawner: Spawner | None = None
        status = SpawnStatus.FAILURE
        try:
            spawner = self._prepare_spawner(server, token)
            spawner.auth_state = auth_state
            url = None
            with gevent.Timeout(self.settings.start_timeout, False):
                url = spawner.start()
            if url is None:
                raise SpawnerError(
                    f"Server did not start within {self.settings.start_timeout:g} seconds "
                    "(start_timeout)."
                )
            # Stored at once, so a hub restart mid-spawn can still find the process, and
            # another process take the spawn over if this one dies (settle_abandoned).
            state = spawner.get_state()
            when_reachable(lambda: self.rows.save_state(server_id, state, url))
            version = wait_for_http(spawner, url, self.http_get, self.settings.http_timeout)
            self.finish_spawn(server_id, spawner, url, version)
            status = SpawnStatus.SUCCESS
        except gevent.GreenletExit:
            # Cancelled by stop_server, which takes it from here.
            if spawner is not None:
                _stop_quietly(spawner)
            raise
        except DATABASE_DOWN as e:
            log.error("Spawn of %s: the database is unreachable: %s", label, e)
            error = SpawnerError(DATABASE_DOWN_DURING_SPAWN)
            self._record_failure(server_id, label, spawner, error)
        except Exception as e:
            self._record_failure(server_id, label, spawner, e)
        finally:
            self.recorder.spawn(status, time.monotonic() - t0)
            self.spawns.pop(server_id, None)
        return status

    def _prepare_spawner(self, server: Server, token: str) -> Spawner:
        """A new spawner with the JUPYTERHUB_* environment and the server's own token."""
        server_id = server.id
        spawner = self._make_spawner(server)
        spawner.env = spawner_env(
            self.settings, server.user.name, server.name, token, spawner.hub_connect_url()
        )
        spawner.on_progress = lambda event: self._keep_progress(server_id, event)
        return spawner

    def _keep_progress(self, server_id: int, event: dict[str, Any]) -> None:
        """Store a progress event, with the others reported meanwhile (app.servers.progress);
        one lost to a database outage does not fail the spawn."""
        self.progress.add(server_id, event)

    def finish_spawn(self, server_id: int, spawner: Spawner, url: str, version: str) -> None:
        """The one finalisation path: add the route, then mark the server running, with
        the hub's own steps on the progress bar (listening, routed) in the same write.

        If the route cannot be added the server is stopped and the spawn fails.
        If a stop claimed the server meanwhile, it wins: nothing is marked.
        """
        # A user with an active server cannot be renamed: the spawner's names hold.
        user_name, server_name = spawner.user_name, spawner.server_name
        prefix = url_prefix(user_name, server_name)
        label = server_label(user_name, server_name)
        try:
            self.routes.add_server(user_name, server_name, url)
        except ProxyError as e:
            _stop_quietly(spawner)
            raise SpawnerError(f"The proxy could not route {prefix} to the server: {e}") from e
        steps = [
            {"progress": LISTENING_PROGRESS, "message": f"Server is listening at {url}"},
            {"progress": ROUTED_PROGRESS, "message": f"Proxy route added: {prefix}"},
        ]
        state = spawner.get_state()
        self.progress.flush(server_id)  # the spawner's steps before the hub's own
        if not when_reachable(
            lambda: self.rows.mark_running(server_id, url, version, state, steps)
        ):
            # A stop (perhaps in another worker) took the server while it started:
            # undo what this spawn did, so no route or process outlives it.
            log.warning("The %s was stopped while starting; cleaning up", label)
            self.routes.delete(prefix)
            _stop_quietly(spawner)
            raise SpawnerError(f"{user_name}'s server was stopped while it was starting.")
        log.info("The %s is ready at %s (version %s)", label, url, version)

    def _record_failure(
        self, server_id: int, label: str, spawner: Spawner | None, error: Exception
    ) -> None:
        message = str(error) or type(error).__name__
        # A SpawnerError is an expected failure with a message; anything else is a bug.
        log.error(
            "Spawn of %s failed: %s",
            label,
            message,
            exc_info=None if isinstance(error, SpawnerError) else error,
        )
        if spawner is not None:
            _stop_quietly(spawner)
        status = getattr(error, "status", None)
        self.progress.flush(server_id)
        when_reachable(lambda: self.rows.mark_failed(server_id, message, status))
        # A failed spawner is kept, with its error, until the server starts again.
        if spawner is not None:
            spawner.error = message

    # -- stopping ------------------------------------------------------------

    def stop_server(
        self, user_name: str, server_name: str = "", *, why: str | None = None
    ) -> Result:
        """Stop a server: STOPPED, or STOPPING while it goes on in the background.

        A pending spawn is cancelled first. Route, then process, then state.
        `why` is what the log line says the stop was for (default: who asked, the
        request's user).
        """
        server, claimed = self.rows.mark_stopping(user_name, server_name)
        if server is None:
            return Result(Outcome.STOPPED)
        server_id = server.id
        if not claimed:
            return Result(Outcome.STOPPING, f"{user_name}'s server is stopping")
        if why is None and request_user() != "-":
            why = f"asked by {request_user()}"
        label = server_label(user_name, server_name) + (f" ({why})" if why else "")
        spawn = self.spawns.pop(server_id, None)
        greenlet = gevent.spawn(carrying_user(self._stop), server, label, spawn)
        self.stops[server_id] = greenlet
        # Interrupting a spawn: the stop goes on in the background.
        if spawn is None:
            greenlet.join(timeout=SLOW_STOP_TIMEOUT)
        if greenlet.dead:
            return Result(Outcome.STOPPED)
        return Result(Outcome.STOPPING, f"{user_name}'s server is stopping")

    def _stop(self, server: Server, label: str, spawn: gevent.Greenlet | None = None) -> None:
        """The stop greenlet, for the server as its stop claimed it; `label` names the
        server and why it stops, for the log."""
        t0 = time.monotonic()
        ok = False
        server_id = server.id
        try:
            if spawn is not None:
                log.warning("Cancelling the pending spawn of the %s to stop it", label)
                spawn.kill(block=True, timeout=5)
                # The spawn may have stored its process's state meanwhile.
                found = when_reachable(lambda: self.rows.by_id(server_id))
                assert found is not None
                server = found
            self.routes.delete_server(server.user.name, server.name)
            self.spawner_for(server).stop()
            ok = True
        except Exception:
            log.exception("Stopping the %s failed", label)
        finally:
            # Nobody else would record it while this process lives: wait out an outage.
            when_reachable(lambda: self._mark_stopped(server_id, reason=None))
            took = time.monotonic() - t0
            self.recorder.server_stop(ok, took)
            self.stops.pop(server_id, None)
        if ok:
            log.info("Stopped %s in %.1f s", label, took)

    def _mark_stopped(self, server_id: int, reason: str | None) -> None:
        self.rows.mark_stopped(server_id, reason)
        spawner = self.spawners.pop(server_id, None)
        if spawner is not None:
            spawner.clear_state()

    def stop_all(self) -> None:
        """Stop every active server (hub shutdown with cleanup_servers)."""
        active = self.rows.in_states(ServerState.RUNNING, ServerState.SPAWNING)
        stops = [
            gevent.spawn(self.stop_server, s.user.name, s.name, why="the hub is shutting down")
            for s in active
        ]
        gevent.joinall(stops, timeout=30)

    def delete_user_files(self, user: User) -> None:
        """After a user is deleted: what the spawner stored for them goes (or stays)."""
        self.spawner_cls(
            user_name=user.name,
            server_name="",
            service_prefix=url_prefix(user.name),
            settings=self.settings,
            storage_id=user.storage_id,
        ).delete_forever()

    def remove_server(self, user_name: str, server_name: str) -> bool:
        """Delete a stopped (or failed) named server, with its tokens and OAuth client."""
        server_id = self.rows.remove(user_name, server_name)
        if server_id is None:
            return False
        # A failed spawn's handle outlives its stop; it goes with the row.
        self.spawners.pop(server_id, None)
        log.info("Removed server %r of %s", server_name, user_name)
        return True

    def remove_when_stopped(self, user_name: str, server_name: str) -> None:
        """Remove a server once its stop finishes (bounded; run it in a greenlet)."""
        deadline = time.monotonic() + REMOVE_WAIT_SECONDS
        while time.monotonic() < deadline:
            server = self.get_server(user_name, server_name)
            if server is None or server.state != ServerState.STOPPING:
                break
            gevent.sleep(0.5)
        if not self.remove_server(user_name, server_name):
            log.warning("Server %r of %s was not removed: it did not stop", server_name, user_name)

    # -- watching ------------------------------------------------------------

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
        reason = spawner.end_reason or f"Your server stopped unexpectedly (exit status {status})."
        label = server_label(server.user.name, server.name)
        log.warning("The %s ended: %s", label, reason)
        self.routes.delete_server(server.user.name, server.name)
        self._mark_stopped(server.id, reason=reason)
        return False

    def machines_changed(self) -> bool:
        """Whether a machine servers run on was lost since the last look (the spawner's)."""
        return self.spawner_cls.machines_changed(self.settings)

    def poll_all(self) -> None:
        """Poll every running server once (not those this process is starting or stopping)."""
        for server in self.rows.in_states(ServerState.RUNNING):
            if server.id not in self.spawns and server.id not in self.stops:
                self.poll_server(server)

    def health(self) -> dict[str, bool]:
        """Whether the parts every request needs answer: the database and the proxy."""
        return {"database": self.db.ping(), "proxy": self.routes.ping()}

    def check_routes(self) -> dict[str, int]:
        """Make the proxy's table match the database now (see Routes.check), after the
        spawner mended what a restarted proxy lost (e.g. its way to the servers)."""
        try:
            self.spawner_cls.repair(self.settings)
        except Exception:
            log.exception("Could not repair the servers' networks; the route check goes on")
        # The proxy may be elsewhere (docker-compose): it reaches the hub as servers do.
        return self.routes.check(self.db, self.users, self.settings.proxy_target)

    def ensure_route(self, server: Server) -> bool:
        """Re-add a running server's route if the proxy lost it; True if it did."""
        return self.routes.ensure(server)

    def recover(self) -> None:
        """After a hub restart: settle what its dead processes left, then poll.

        Runs once, in `flaskhub run`, before any worker exists.
        """
        self.settle_abandoned()
        self.poll_all()

    def settle_abandoned(self) -> int:
        """Fail spawns and finish stops whose hub process died; how many it settled.

        The reconcile loop runs this every tick: a worker or replica killed
        mid-spawn leaves its server spawning, and only another process can tell.
        """
        settled = 0
        for server in self.rows.in_states(ServerState.SPAWNING, ServerState.STOPPING):
            if server.id in self.spawns or server.id in self.stops:
                continue
            why = self._abandoned_because(server)
            if why is None or not self.rows.take_over(server.id, server.owner):
                continue
            if server.state == ServerState.SPAWNING and server.url is not None:
                # Started, not yet answering: a replica replaced in a rolling upgrade
                # (or a killed worker) leaves its spawn to be finished here.
                self.spawns[server.id] = gevent.spawn(self._resume, server, why)
            else:
                self._settle(server, why)
            settled += 1
        return settled

    def _resume(self, server: Server, why: str) -> SpawnStatus:
        """Finish the spawn of a dead owner whose server had started: wait for its HTTP
        (within the spawn's own time left, at least a look), then route it as any spawn."""
        server_id, url = server.id, str(server.url)
        label = server_label(server.user.name, server.name)
        log.warning("The %s: %s Taking its start over: waiting for it at %s", label, why, url)
        t0 = time.monotonic()
        spawner = self.spawner_for(server)
        spawner.on_progress = lambda event: self._keep_progress(server_id, event)
        status = SpawnStatus.FAILURE
        try:
            if spawner.poll() is not None:
                raise SpawnerError("Its server had ended.")
            version = wait_for_http(spawner, url, self.http_get, self._time_left(server))
            self.finish_spawn(server_id, spawner, url, version)
            status = SpawnStatus.SUCCESS
        except Exception as e:
            error = SpawnerError(f"{why} {e} Start the server again.")
            self._record_failure(server_id, label, spawner, error)
        finally:
            self.recorder.spawn(status, time.monotonic() - t0)
            self.spawns.pop(server_id, None)
        return status

    def _time_left(self, server: Server) -> float:
        """What is left of a spawn's http_timeout, counted from its start at the latest
        (a spawn that took start_timeout to start has had none of it yet)."""
        started = server.started or utcnow()
        elapsed = (utcnow() - started).total_seconds()
        return max(self.settings.http_timeout - elapsed, TAKEN_OVER_LOOK_SECONDS)

    def _abandoned_because(self, server: Server) -> str | None:
        """Why the server's spawn or stop has no live owner, or None if it has one."""
        starting = server.state == ServerState.SPAWNING
        what = "starting" if starting else "stopping"
        if server.owner == this_process():
            return None
        owner = f"The hub process that was {what} this server ({describe(server.owner)})"
        # By its pid on this host; by its heartbeat on another (None: cannot tell).
        alive = self.heartbeats.alive(server.owner) if server.owner is not None else False
        if alive is False and server.owner is not None and process_alive(server.owner) is None:
            return f"{owner} stopped: not heard from for {DEAD_AFTER_SECONDS:g} seconds."
        if alive is False:
            return f"{owner} stopped before it finished."
        limit = ABANDONED_AFTER_SECONDS + (
            self.settings.start_timeout + self.settings.http_timeout
            if starting
            else SLOW_STOP_TIMEOUT
        )
        since = server.started if starting else None
        if alive is None and since is not None and (utcnow() - since).total_seconds() > limit:
            return f"{owner} did not finish within {limit:g} seconds."
        return None

    def _settle(self, server: Server, why: str) -> None:
        """Clean up after a dead owner: the process, the route, then the state."""
        label = server_label(server.user.name, server.name)
        log.warning("The %s: %s Cleaning up.", label, why)
        _stop_quietly(self.spawner_for(server))
        self.routes.delete_server(server.user.name, server.name)
        if server.state == ServerState.SPAWNING:
            error = SpawnerError(f"{why} Start the server again.")
            self._record_failure(server.id, label, None, error)
        else:
            self._mark_stopped(server.id, reason=None)
        self.spawners.pop(server.id, None)

    # -- handles -------------------------------------------------------------

    def spawner_for(self, server: Server) -> Spawner:
        """The handle on a server's process, rebuilt from its stored state if needed.

        Also rebuilt when the stored state is another process's: another worker
        stopped and restarted the server since this handle was made.
        """
        spawner = self.spawners.get(server.id)
        if spawner is None or (
            server.spawner_state and spawner.get_state() != server.spawner_state
        ):
            spawner = self._make_spawner(server)
        return spawner

    def _make_spawner(self, server: Server) -> Spawner:
        spawner = self.spawner_cls(
            user_name=server.user.name,
            server_name=server.name,
            service_prefix=url_prefix(server.user.name, server.name),
            settings=settings_for(self.settings, server.user_options or {}),
            storage_id=server.user.storage_id,
            user_options=server.user_options,
        )
        spawner.load_state(server.spawner_state or {})
        self.spawners[server.id] = spawner
        return spawner


def _stop_quietly(spawner: Spawner) -> None:
    try:
        spawner.stop(now=True)
    except Exception:
        log.exception("Could not stop the server of %s", spawner.user_name)
