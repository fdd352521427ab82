"""The Spawner contract.

A Spawner object is a handle on one server of one user. The hub creates it
only when it needs it (to start, poll or stop the server) and drops it after
the server stops. Everything needed to find the server again after a hub
restart goes in ``get_state()``, which the hub stores in the database and
gives back through ``load_state()``.

States and errors:

- ``start()`` launches the server and returns the URL it will answer on
  (``http://127.0.0.1:<port>``). It may return before the server answers
  HTTP: the hub waits for that itself (``http_timeout``). It raises
  ``SpawnerError`` (or any exception) when the server cannot be launched;
  the message is shown to the user. The hub cancels it after
  ``start_timeout`` (a ``gevent.Timeout`` is raised inside it).
- ``poll()`` returns None while the server is alive, else its exit status
  (0 when unknown). It must be cheap and never block.
- ``stop(now=False)`` ends the server; it returns when the server is gone.
- ``report_progress(percent, message)`` may be called from ``start()`` to
  feed the progress page between "Server requested" (0) and "Server ready"
  (100); the hub stores each event (``on_progress``) so that every worker can
  stream it. After ``start()`` the hub reports its own steps on the same
  spawner: the server listening (90), its route added (95). Progress never
  goes back: a step reported lower than an earlier one keeps the earlier value.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.config import Settings

# Between a user's and a server's name where both make one name (an OAuth client id,
# a log file): no username contains it, so server x of alice is never user alice-x.
SERVER_SEPARATOR = "~"


class SpawnerError(Exception):
    """A server could not be started; ``status`` is the HTTP status to show."""

    def __init__(self, message: str, status: int = 500) -> None:
        super().__init__(message)
        self.status = status


# The entry of a spawner's state that outlives the server's run (see Spawner.get_state).
KEPT = "kept"


def kept_state(state: dict[str, Any] | None) -> dict[str, Any]:
    """What of a server's stored state stays once it stopped: its KEPT entry, if any."""
    kept = (state or {}).get(KEPT)
    return {KEPT: kept} if kept else {}


class Spawner:
    """Base class; subclasses implement start, poll and stop."""

    # While the hub waits for a started server to answer, poll() at most this often (a
    # container's poll is a call to the engine, which every spawn at once shares).
    start_poll_seconds = 0.0

    def __init__(
        self,
        *,
        user_name: str,
        server_name: str,
        service_prefix: str,
        settings: Settings,
        storage_id: str,
        user_options: dict[str, Any] | None = None,
    ) -> None:
        self.user_name = user_name
        #: The user's stable id: key the user's files by it, never by the name.
        self.storage_id = storage_id
        self.server_name = server_name
        self.service_prefix = service_prefix
        self.settings = settings
        self.user_options = user_options or {}
        #: JUPYTERHUB_* variables, set by the hub before start().
        self.env: dict[str, str] = {}
        #: The user's auth state (the identity provider's tokens and claims, decrypted),
        #: set by the hub before start() when it keeps auth state (crypt_key), else None.
        #: A subclass may hand some of it to the server, e.g. the access token in env.
        self.auth_state: dict[str, Any] | None = None
        #: Where each progress event goes ({"progress": int, "message": str}); set by the hub.
        self.on_progress: Callable[[dict[str, Any]], None] | None = None
        #: The message of the failed spawn this object belongs to, if any.
        self.error: str | None = None
        #: Why the server ended, for its owner, when poll() knows better than an exit
        #: status (e.g. the machine it ran on was lost).
        self.end_reason = ""
        self._progress = 0

    @classmethod
    def shares_hub_account(cls) -> bool:
        """Whether servers run as the hub's own OS account (and can read its files)."""
        return False

    @property
    def file_stem(self) -> str:
        """A name for this server's files (its log), unique among all servers."""
        if not self.server_name:
            return self.user_name
        return f"{self.user_name}{SERVER_SEPARATOR}{self.server_name}"

    @classmethod
    def repair(cls, settings: Settings) -> None:
        """Mend, at each route check, what a restarted part of the deployment lost."""

    @classmethod
    def machines_changed(cls, settings: Settings) -> bool:
        """Whether a machine servers run on was lost since last asked: poll them now."""
        return False

    @classmethod
    def preflight(cls, settings: Settings) -> None:
        """Check at start what would fail every spawn (raise SpawnerError naming the fix)."""

    @classmethod
    def hub_connect_ips(cls, settings: Settings) -> list[str]:
        """Addresses the hub must listen on besides hub_ip for servers to reach it."""
        return []

    def hub_connect_url(self) -> str:
        """The hub's URL as the server reaches it (`server_hub_url`, `hub_connect_ip`, else
        the hub's own)."""
        return self.settings.server_hub_url.rstrip("/") or self.settings.hub_connect_url

    def exit_error(self, status: int) -> SpawnerError:
        """Why the server is gone before it answered (a container's adds its last lines)."""
        return SpawnerError(
            f"Server of {self.user_name} exited with status {status} before it answered. "
            "Its log may say why."
        )

    def start(self) -> str:
        """Launch the server; return its URL (``http://ip:port``), as soon as it is known:
        the hub then waits for the server to answer (http_timeout)."""
        raise NotImplementedError

    def poll(self) -> int | None:
        """None while the server is alive, else its exit status."""
        raise NotImplementedError

    def stop(self, now: bool = False) -> None:
        """Stop the server (``now``: without a grace period)."""
        raise NotImplementedError

    def delete_forever(self) -> None:
        """The user was deleted: remove (or keep, per `keep_user_files`) what is stored
        for them. Called once per deleted user, on a handle of the default server."""

    def get_state(self) -> dict[str, Any]:
        """What the hub must store to find this server again (JSON-serialisable). Its
        KEPT entry outlives the server's run, e.g. which machine its home is on: the
        hub keeps it when the server stops or fails."""
        return {}

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore from what get_state() returned earlier."""

    def clear_state(self) -> None:
        """Forget the server after it stopped."""

    def report_progress(self, progress: int, message: str) -> None:
        """Report a progress event (0 < progress < 100) for the spawn-pending page."""
        # A subclass's steps before its base class's (lower) ones must not move the bar back.
        self._progress = max(self._progress, progress)
        if self.on_progress is not None:
            self.on_progress({"progress": self._progress, "message": message})
