"""The servers table: each state transition the lifecycle writes, one short transaction each.

No network I/O happens inside these transactions; the ServerManager does the
talking (to spawners and the proxy) between them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import JSON, Connection, Table, bindparam, delete, insert, select, update
from sqlalchemy.orm import Session, joinedload

from app.db import Database, rows_changed
from app.models import ProgressEvent, Server, ServerState, User, utcnow
from app.oauth import OAuthService
from app.outcomes import Conflict, NotFound
from app.processes import this_process
from app.scopes import access_scopes
from app.servers.names import client_id, server_url, url_prefix
from app.spawners.base import KEPT, kept_state
from app.tokens import TokenService

# A server with its user's own columns (name, storage id) and none of the user's
# collections: by default a User brings its servers, groups and roles (three more
# SELECTs per user), which the lifecycle never reads.
SERVER_ONLY = (joinedload(Server.user).lazyload("*"),)


# A spawn's writes of its server row: one UPDATE each, without loading the row, on the
# table (no ORM session to synchronise), built once: building a statement and its cache
# key cost more than running it.
_SERVERS = cast(Table, Server.__table__)
_THIS_SERVER = _SERVERS.c.id == bindparam("server_id")
_SAVE_STATE = (
    update(_SERVERS)
    .where(_THIS_SERVER)
    .values(spawner_state=bindparam("new_state"), url=bindparam("url"))
)
_MARK_RUNNING = (
    update(_SERVERS)
    .where(
        _THIS_SERVER,
        _SERVERS.c.state == ServerState.SPAWNING,
        _SERVERS.c.owner == bindparam("me"),
    )
    .values(
        state=ServerState.RUNNING,
        url=bindparam("new_url"),
        version=bindparam("new_version"),
        spawner_state=bindparam("new_state"),
        last_activity=bindparam("now"),
        owner=None,
    )
)


# A spawn's progress events: (seq, {"progress": int, "message": str, ...}), oldest first.
Progress = list[tuple[int, dict[str, Any]]]
_EVENTS = cast(Table, ProgressEvent.__table__)
# Appended only while the server is spawning: a late event of a spawn that ended (or
# was stopped) is not kept.
_ADD_PROGRESS = insert(_EVENTS).from_select(
    ["server_id", "event"],
    select(_SERVERS.c.id, bindparam("event", type_=JSON)).where(
        _THIS_SERVER, _SERVERS.c.state == ServerState.SPAWNING
    ),
)
_PROGRESS_AFTER = (
    select(_EVENTS.c.seq, _EVENTS.c.event)
    .where(_EVENTS.c.server_id == bindparam("server_id"), _EVENTS.c.seq > bindparam("after"))
    .order_by(_EVENTS.c.seq)
)


def progress_after(conn: Connection, server_id: int, after: int) -> Progress:
    """A server's progress events after seq `after`, oldest first."""
    rows = conn.execute(_PROGRESS_AFTER, {"server_id": server_id, "after": after})
    return [(seq, event) for seq, event in rows]


def forget_progress(session: Session, server_id: int) -> None:
    """Drop the events of a server's earlier spawn (its claim starts a new one)."""
    session.execute(delete(_EVENTS).where(_EVENTS.c.server_id == server_id))


class ServerRows:
    """Reads and writes server rows (and the credentials issued to a server)."""

    def __init__(
        self, db: Database, tokens: TokenService, oauth: OAuthService, subdomain_host: str = ""
    ) -> None:
        self.db = db
        self.tokens = tokens
        self.oauth = oauth
        self.subdomain_host = subdomain_host

    def get(self, user_name: str, server_name: str = "") -> Server | None:
        with self.db.read() as session:
            return find_server(session, user_name, server_name)

    def of_user(self, user_name: str) -> Sequence[Server]:
        """Every server of a user, the default one first, then by name."""
        with self.db.read() as session:
            query = select(Server).join(Server.user).where(User.name == user_name)
            return session.scalars(query.options(*SERVER_ONLY).order_by(Server.name)).all()

    def by_id(self, server_id: int) -> Server | None:
        with self.db.read() as session:
            return session.get(Server, server_id, options=SERVER_ONLY)

    def in_states(self, *states: ServerState) -> Sequence[Server]:
        with self.db.read() as session:
            query = select(Server).where(Server.state.in_(states)).options(*SERVER_ONLY)
            return session.scalars(query).all()

    def issue_credentials(self, session: Session, server: Server) -> str:
        """A new API token for a starting server, which is also its OAuth client's secret,
        in the caller's transaction: the claim's, which has the server row at hand."""
        user_name, server_name = server.user.name, server.name
        prefix = url_prefix(user_name, server_name)
        token, hashed = self.tokens.add(
            session,
            server.user_id,
            note=f"Server at {prefix}",
            scopes=[
                *access_scopes(user_name, server_name),
                "identify",
                f"users:activity!user={user_name}",
            ],
            server_id=server.id,
        )
        self.oauth.register_client(
            session,
            client_id=client_id(user_name, server_name),
            secret_hash=hashed,
            # On the server's own origin with per-user origins (its login happens there).
            redirect_uri=server_url(self.subdomain_host, user_name, server_name) + "oauth_callback",
            description=f"Server at {prefix}",
            server_id=server.id,
        )
        return token

    def save_state(self, server_id: int, state: dict[str, Any], url: str) -> None:
        """A started server's state and URL, while it is still spawning: another process
        finds the process there, and can take the spawn over if this one dies."""
        with self.db.write() as session:
            session.execute(_SAVE_STATE, {"server_id": server_id, "new_state": state, "url": url})

    def add_progress(self, events: Sequence[tuple[int, dict[str, Any]]]) -> None:
        """Keep progress events (server id, event) of spawning servers, where every
        worker's stream reads them: one transaction, one INSERT each, in order (none for a
        server no longer spawning)."""
        with self.db.write() as session:
            for server_id, event in events:
                session.execute(_ADD_PROGRESS, {"server_id": server_id, "event": event})

    def progress(self, server_id: int, after: int = 0) -> Progress:
        """The progress events (seq, event) of a server's current spawn after seq `after`."""
        with self.db.connect() as conn:
            return progress_after(conn, server_id, after)

    def watch(self, user_name: str, server_name: str, after: int) -> tuple[Server | None, Progress]:
        """A server and its progress events after seq `after`, in one read (a stream's look)."""
        with self.db.read() as session:
            server = find_server(session, user_name, server_name)
            if server is None:
                return None, []
            return server, progress_after(session.connection(), server.id, after)

    def take_over(self, server_id: int, owner: str | None) -> bool:
        """Become the owner of a spawn or stop whose owner died; False if it moved on."""
        with self.db.write() as session:
            server = session.get(Server, server_id, options=SERVER_ONLY)
            if server is None or server.owner != owner:
                return False
            if server.state not in (ServerState.SPAWNING, ServerState.STOPPING):
                return False
            server.owner = this_process()
            return True

    def mark_running(
        self,
        server_id: int,
        url: str,
        version: str,
        state: dict[str, Any],
        events: Sequence[dict[str, Any]] = (),
    ) -> bool:
        """SPAWNING → RUNNING, after its last progress events; False if a stop (or a process
        that took the spawn over as abandoned) took the server meanwhile: it wins."""
        values = {
            "server_id": server_id,
            "me": this_process(),
            "new_url": url,
            "new_version": version,
            "new_state": state,
            "now": utcnow(),
        }
        with self.db.write() as session:
            if events:
                steps = [{"server_id": server_id, "event": event} for event in events]
                session.execute(_ADD_PROGRESS, steps)
            return rows_changed(session.execute(_MARK_RUNNING, values)) == 1

    def mark_failed(self, server_id: int, message: str, status: int | None) -> None:
        """A spawning server → FAILED with its message; its credentials are revoked."""
        with self.db.write() as session:
            server = session.get(Server, server_id, options=SERVER_ONLY)
            if server is None:
                return
            if server.state == ServerState.SPAWNING:
                server.state = ServerState.FAILED
                server.failure_message = message
                server.failure_status = status
            server.url = None
            server.owner = None
            server.spawner_state = kept_state(server.spawner_state)
            self.tokens.revoke_for_server(session, server.id)

    def mark_stopping(self, user_name: str, server_name: str) -> tuple[Server | None, bool]:
        """SPAWNING/RUNNING → STOPPING: (the server, True); (server, False) if it was already
        stopping; (None, False) if there is nothing to stop."""
        with self.db.write() as session:
            server = find_server(session, user_name, server_name)
            if server is None or server.state not in (
                ServerState.SPAWNING,
                ServerState.RUNNING,
                ServerState.STOPPING,
            ):
                return None, False
            if server.state == ServerState.STOPPING:
                return server, False
            server.state = ServerState.STOPPING
            server.owner = this_process()
            return server, True

    def mark_stopped(self, server_id: int, reason: str | None) -> None:
        """→ STOPPED (with why, if it stopped on its own); its credentials are revoked."""
        with self.db.write() as session:
            server = session.get(Server, server_id, options=SERVER_ONLY)
            if server is not None:
                server.state = ServerState.STOPPED
                server.url = None
                server.spawner_state = kept_state(server.spawner_state)
                server.stop_reason = reason
                server.owner = None
                self.tokens.revoke_for_server(session, server.id)

    def remove(self, user_name: str, server_name: str) -> int | None:
        """Delete a stopped or failed server's row (tokens and OAuth client go with it);
        its id, or None if it is absent or active."""
        with self.db.write() as session:
            server = find_server(session, user_name, server_name)
            if server is None or server.state not in (ServerState.STOPPED, ServerState.FAILED):
                return None
            session.delete(server)
            return server.id


def forget_kept(db: Database, user_name: str, server_name: str, key: str) -> str | None:
    """Drop key from what a stopped server keeps between runs (e.g. its home's node);
    the value it had, or None if it had none. Refused while the server is active."""
    with db.write() as session:
        server = find_server(session, user_name, server_name)
        if server is None:
            raise NotFound(f"{user_name} has no server named {server_name!r}")
        if server.active:
            raise Conflict(f"Stop {user_name}'s server first: it is {server.state}")
        state = dict(server.spawner_state or {})
        kept = dict(state.get(KEPT) or {})
        value = kept.pop(key, None)
        state[KEPT] = kept
        server.spawner_state = kept_state(state)
        return None if value is None else str(value)


def find_server(session: Session, user_name: str, server_name: str) -> Server | None:
    """A user's server by name, in an open session."""
    query = (
        select(Server).join(Server.user).where(User.name == user_name, Server.name == server_name)
    )
    return session.scalar(query.options(*SERVER_ONLY))
