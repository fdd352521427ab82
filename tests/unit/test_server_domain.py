"""The lifecycle's decisions, in-process and without processes or a proxy: the claim,
the limits, what a state means for a visitor, and how outcomes become HTTP."""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
from flask import Flask
from sqlalchemy.exc import OperationalError

from app.db import get_db
from app.errors import STATUS, headers_of, status_of
from app.models import ProgressEvent, Server, ServerState, utcnow
from app.outcomes import Invalid, NotFound, Outcome, Result
from app.processes import _name_of
from app.servers import Next, SpawnStatus, get_servers, listening
from app.servers.listening import Listeners
from app.servers.spawning import (
    HTTP_POLL_FIRST,
    HTTP_POLL_MAX,
    check_limits,
    claim,
    direct_get,
    listener,
    look_again_in,
    wait_for_http,
)
from app.servers.visit import visit_of
from app.spawners import SpawnerError
from app.spawners.base import Spawner
from app.users import get_users
from tests.transactions import counting


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app(allow_named_servers=True, named_server_limit_per_user=2)


@pytest.fixture
def add_server(app: Flask) -> Callable[..., int]:
    """add_server(user, state, name="", **columns): a server row (its user created); its id."""

    def _add(user_name: str, state: ServerState, name: str = "", **columns: Any) -> int:
        user = get_users(app).get_or_create(user_name)
        with get_db(app).write() as session:
            server = Server(user_id=user.id, name=name, state=state, **columns)
            session.add(server)
            session.flush()
            return server.id

    return _add


def _claim(
    app: Flask,
    user: str,
    server: str = "",
    *,
    explicit: bool = True,
    options: dict[str, Any] | None = None,
) -> Result | int:
    """The claim's refusal, or the id of the server it claimed (options: {"size": "s"})."""
    settings = get_servers(app).settings
    options = {"size": "s"} if options is None else options
    with get_db(app).write() as session:
        claimed = claim(session, settings, user, server, options, explicit=explicit)
        return claimed if isinstance(claimed, Result) else claimed.id


def _claimed_options(app: Flask, user: str, server: str = "") -> dict[str, Any]:
    """The options a claim given none starts the server with."""
    settings = get_servers(app).settings
    with get_db(app).write() as session:
        claimed = claim(session, settings, user, server, None, explicit=True)
        assert isinstance(claimed, Server)
        return claimed.user_options


# -- the claim ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "explicit", "outcome", "message"),
    [
        (ServerState.STOPPING, True, Outcome.PENDING_STOP, "ann is pending stop"),
        (ServerState.SPAWNING, True, Outcome.ALREADY_PENDING, "ann is already pending spawn"),
        (ServerState.RUNNING, True, Outcome.ALREADY_RUNNING, "ann's server is already running"),
        (ServerState.FAILED, False, Outcome.FAILED, "it broke"),
    ],
)
def test_claim_refuses_by_state(
    app: Flask,
    add_server: Callable[..., int],
    state: ServerState,
    explicit: bool,
    outcome: Outcome,
    message: str,
) -> None:
    add_server("ann", state, url="http://127.0.0.1:1", failure_message="it broke")
    result = _claim(app, "ann", explicit=explicit)
    assert isinstance(result, Result)
    assert (result.outcome, result.message) == (outcome, message)
    server = get_servers(app).get_server("ann")
    assert server is not None and server.state == state  # nothing changed


def test_an_explicit_claim_starts_a_failed_server_again(
    app: Flask, add_server: Callable[..., int]
) -> None:
    server_id = add_server(
        "bo",
        ServerState.FAILED,
        failure_message="it broke",
        failure_status=418,
        stop_reason="old",
    )
    with get_db(app).write() as session:
        session.add(ProgressEvent(server_id=server_id, event={"progress": 50, "message": "old"}))
    assert _claim(app, "bo") == server_id
    server = get_servers(app).get_server("bo")
    assert server is not None and server.state == ServerState.SPAWNING
    assert server.pending == "spawn" and not server.ready
    assert (server.failure_message, server.failure_status, server.stop_reason) == (None,) * 3
    assert get_servers(app).rows.progress(server_id) == []
    assert server.user_options == {"size": "s"}


def test_a_server_started_before_is_claimed_with_its_user_at_hand(
    app: Flask, add_server: Callable[..., int]
) -> None:
    # The spawn's credentials are named after the server's user, read with the claim.
    add_server("bo", ServerState.STOPPED)
    settings = get_servers(app).settings
    with get_db(app).write() as session:
        server = claim(session, settings, "bo", "", {}, explicit=True)
        assert isinstance(server, Server)
        with counting(get_db(app).engine) as later:
            assert server.user.name == "bo"
    assert later.statements == 0, later.sql


def test_a_claim_given_no_options_takes_those_of_the_last_start(
    app: Flask, add_server: Callable[..., int]
) -> None:
    add_server("bo", ServerState.STOPPED, user_options={"size": "s", "note": "kept"})
    get_users(app).create_many(["cy"])
    assert _claimed_options(app, "bo") == {"size": "s", "note": "kept"}
    assert _claimed_options(app, "cy") == {}
    # Options given, even none, are those used.
    add_server("di", ServerState.STOPPED, user_options={"size": "s"})
    _claim(app, "di", options={})
    server = get_servers(app).get_server("di")
    assert server is not None and server.user_options == {}


def test_last_options_no_longer_offered_are_refused_and_nothing_changes(
    make_app: Callable[..., Flask],
) -> None:
    app = make_app(spawn_options=[{"name": "size", "choices": ["m", "l"]}])
    user = get_users(app).get_or_create("bo")
    with get_db(app).write() as session:
        session.add(
            Server(user_id=user.id, name="", state=ServerState.STOPPED, user_options={"size": "s"})
        )
    with pytest.raises(Invalid, match="size"):
        _claimed_options(app, "bo")
    server = get_servers(app).get_server("bo")
    assert server is not None and server.state == ServerState.STOPPED


@pytest.mark.parametrize("explicit", [True, False])
def test_a_claim_creates_a_never_started_server(app: Flask, explicit: bool) -> None:
    get_users(app).create_many(["cy"])
    server_id = _claim(app, "cy", "lab", explicit=explicit)
    assert isinstance(server_id, int)
    server = get_servers(app).get_server("cy", "lab")
    assert server is not None and server.id == server_id and server.started is not None


def test_a_claim_for_an_unknown_user_is_not_found(app: Flask) -> None:
    with pytest.raises(NotFound, match="No such user: ghost"):
        _claim(app, "ghost")


def test_the_named_server_limit_counts_stopped_servers(
    app: Flask, add_server: Callable[..., int]
) -> None:
    add_server("di", ServerState.STOPPED, name="one")
    add_server("di", ServerState.FAILED, name="two")
    with pytest.raises(Invalid, match="maximum of 2 named servers"):
        _claim(app, "di", "three")
    assert isinstance(_claim(app, "di", "one"), int)  # an existing one may start


@pytest.mark.parametrize(
    ("settings", "counts", "outcome"),
    [
        ({"concurrent_spawn_limit": 2}, {"spawn_pending": 2, "active": 2}, Outcome.THROTTLED),
        ({"concurrent_spawn_limit": 2}, {"spawn_pending": 1, "active": 9}, None),
        ({"concurrent_spawn_limit": 0}, {"spawn_pending": 99, "active": 99}, None),
        ({"active_server_limit": 3}, {"spawn_pending": 0, "active": 3}, Outcome.TOO_MANY_USERS),
        ({"active_server_limit": 3}, {"spawn_pending": 0, "active": 2}, None),
    ],
)
def test_limits(
    make_app: Callable[..., Flask],
    settings: dict[str, int],
    counts: dict[str, int],
    outcome: Outcome | None,
) -> None:
    result = check_limits(get_servers(make_app(**settings)).settings, counts)
    if outcome is None:
        assert result is None
        return
    assert result is not None and result.outcome == outcome
    assert result.retry_after is not None and 30 <= result.retry_after <= 60
    if outcome == Outcome.THROTTLED:
        assert f"Try again in {result.retry_after} seconds." in result.message


def test_refusals_are_observed_under_their_spawn_label() -> None:
    assert SpawnStatus.of_refusal(Outcome.THROTTLED) == SpawnStatus.THROTTLED
    assert SpawnStatus.of_refusal(Outcome.TOO_MANY_USERS) == SpawnStatus.TOO_MANY_USERS
    assert SpawnStatus.of_refusal(Outcome.ALREADY_PENDING) == SpawnStatus.ALREADY_PENDING
    assert SpawnStatus.of_refusal(Outcome.PENDING_STOP) == SpawnStatus.ALREADY_PENDING
    # Not a spawn: an implicit start of a failed server, or one already running.
    assert SpawnStatus.of_refusal(Outcome.FAILED) is None
    assert SpawnStatus.of_refusal(Outcome.ALREADY_RUNNING) is None


# -- what a state means for a visitor ----------------------------------------


@pytest.mark.parametrize(
    ("state", "columns", "implicit", "next_", "message", "may_spawn"),
    [
        (ServerState.RUNNING, {"url": "http://127.0.0.1:1"}, True, Next.GO, "", False),
        (ServerState.SPAWNING, {}, True, Next.WAIT, "eve's server is starting", False),
        (
            ServerState.FAILED,
            {"failure_message": "no image", "failure_status": 418},
            True,
            Next.SHOW_FAILURE,
            "no image",
            False,
        ),
        (ServerState.STOPPING, {}, True, Next.WAIT_STOP, "eve's server is stopping.", False),
        (ServerState.STOPPED, {}, True, Next.LAUNCH, "eve's server is not running.", True),
        (ServerState.STOPPED, {}, False, Next.LAUNCH, "eve's server is not running.", False),
        (
            ServerState.STOPPED,
            {"stop_reason": "Your server stopped unexpectedly"},
            True,
            Next.LAUNCH,
            "Your server stopped unexpectedly",
            False,
        ),
        # Running without a URL is not ready: nothing to go to.
        (ServerState.RUNNING, {}, True, Next.LAUNCH, "eve's server is not running.", True),
    ],
)
def test_visit_decision(
    state: ServerState,
    columns: dict[str, Any],
    implicit: bool,
    next_: Next,
    message: str,
    may_spawn: bool,
) -> None:
    server = Server(name="lab", state=state, **columns)
    visit = visit_of(server, "eve", "lab", implicit_spawn=implicit)
    assert visit.next == next_ and visit.url == "/user/eve/lab/"
    assert visit.message.startswith(message)
    assert visit.implicit_spawn is may_spawn
    if next_ == Next.SHOW_FAILURE:
        assert visit.failure_status == 418


def test_a_never_started_server_may_be_spawned_implicitly() -> None:
    visit = visit_of(None, "fay", implicit_spawn=True)
    assert (visit.next, visit.url, visit.implicit_spawn) == (Next.LAUNCH, "/user/fay/", True)


# -- stopping and progress, on rows alone -----------------------------------


def test_stop_of_a_server_that_is_not_active(app: Flask, add_server: Callable[..., int]) -> None:
    servers = get_servers(app)
    get_users(app).create_many(["gus"])
    assert servers.stop_server("gus").outcome == Outcome.STOPPED  # never started
    add_server("gus", ServerState.STOPPING)
    result = servers.stop_server("gus")
    assert result.outcome == Outcome.STOPPING and "gus's server is stopping" in result.message


def test_progress_is_kept_only_while_spawning(app: Flask, add_server: Callable[..., int]) -> None:
    rows = get_servers(app).rows
    spawning = add_server("hal", ServerState.SPAWNING)
    stopped = add_server("ida", ServerState.STOPPED)
    steps = [{"progress": 10 * step, "message": f"step {step}"} for step in (1, 2)]
    rows.add_progress([(server, step) for step in steps for server in (spawning, stopped)])
    assert [e["message"] for _seq, e in rows.progress(spawning)] == ["step 1", "step 2"]
    assert rows.progress(stopped) == []


def test_progress_events_are_one_insert_each_in_one_write_and_a_stream_reads_what_is_new(
    app: Flask, add_server: Callable[..., int]
) -> None:
    rows = get_servers(app).rows
    server_id = add_server("hal", ServerState.SPAWNING)
    rows.add_progress([(server_id, {"progress": 10, "message": "first"})])
    later = [{"progress": 20, "message": "second"}, {"progress": 30, "message": "third"}]
    with counting(get_db(app).engine) as counts:
        rows.add_progress([(server_id, event) for event in later])
    assert (counts.transactions, counts.writes, counts.statements) == (1, 1, 2), counts.sql
    assert all(sql.startswith("INSERT INTO progress_events") for sql in counts.sql), counts.sql
    (first, _), (second, event), (third, _) = rows.progress(server_id)
    assert first < second < third and event == later[0]
    assert rows.progress(server_id, after=first) == [(second, event), (third, later[1])]
    assert rows.progress(server_id, after=third) == []


# -- outcomes as HTTP (the web layer's one mapping) --------------------------


def test_every_outcome_has_a_status() -> None:
    assert set(STATUS) == set(Outcome)


@pytest.mark.parametrize(
    ("result", "status", "headers"),
    [
        (Result(Outcome.READY), 201, {}),
        (Result(Outcome.PENDING), 202, {}),
        (Result(Outcome.ALREADY_PENDING), 202, {}),
        (Result(Outcome.STOPPED), 204, {}),
        (Result(Outcome.STOPPING), 202, {}),
        (Result(Outcome.PENDING_STOP), 400, {}),
        (Result(Outcome.ALREADY_RUNNING), 400, {}),
        (Result(Outcome.THROTTLED, retry_after=42), 429, {"Retry-After": "42"}),
        (Result(Outcome.TOO_MANY_USERS, retry_after=31), 429, {"Retry-After": "31"}),
        (Result(Outcome.FAILED), 500, {}),
        (Result(Outcome.FAILED, failure_status=418), 418, {}),
    ],
)
def test_results_as_http(result: Result, status: int, headers: dict[str, str]) -> None:
    assert status_of(result) == status
    assert headers_of(result) == headers


# -- spawns and stops whose hub process died ------------------------------------

DEAD_OWNER = f"{socket.gethostname()}:4194399:1"  # no such pid (pid_max <= 2**22)
LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("state", "owner", "started", "settled_as", "message"),
    [
        (ServerState.SPAWNING, DEAD_OWNER, None, ServerState.FAILED, "stopped before it finished"),
        (ServerState.SPAWNING, None, None, ServerState.FAILED, "stopped before it finished"),
        (ServerState.STOPPING, DEAD_OWNER, None, ServerState.STOPPED, None),
        # Another host's process: taken as dead only once past every timeout.
        (ServerState.SPAWNING, "elsewhere:7:7", LONG_AGO, ServerState.FAILED, "did not finish"),
        (ServerState.SPAWNING, "elsewhere:7:7", "now", ServerState.SPAWNING, None),
        # A live process (pid 1) keeps its spawn.
        (ServerState.SPAWNING, "pid1", LONG_AGO, ServerState.SPAWNING, None),
    ],
)
def test_abandoned_spawns_fail_and_stops_finish(
    app: Flask,
    add_server: Callable[..., int],
    state: ServerState,
    owner: str | None,
    started: object,
    settled_as: ServerState,
    message: str | None,
) -> None:
    owner = _name_of(1) if owner == "pid1" else owner
    when = utcnow() if started == "now" else started
    server_id = add_server("ann", state, owner=owner, started=when or utcnow())
    servers = get_servers(app)
    assert servers.settle_abandoned() == (0 if settled_as == state else 1)
    server = servers.rows.by_id(server_id)
    assert server is not None and server.state == settled_as
    if message is not None:
        assert message in (server.failure_message or "")
        assert "Start the server again." in (server.failure_message or "")
    if settled_as != state:
        assert server.owner is None


def test_a_spawn_taken_over_as_abandoned_is_not_marked_running_by_its_owner(
    app: Flask, add_server: Callable[..., int]
) -> None:
    server_id = add_server("ann", ServerState.SPAWNING, owner="elsewhere:7:7")
    rows = get_servers(app).rows
    assert rows.take_over(server_id, "elsewhere:7:7")
    assert not rows.take_over(server_id, "elsewhere:7:7")  # it moved on
    assert rows.mark_running(server_id, "http://127.0.0.1:9", "6.1.1", {}) is True  # ours now


def test_a_stop_records_its_outcome_once_the_database_answers_again(
    app: Flask, add_server: Callable[..., int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database drops out just as a stop ends: the stop waits for it, never stays
    stopping (a fault injected into the stop's last write)."""
    server_id = add_server("ann", ServerState.RUNNING, url="http://127.0.0.1:9")
    rows = get_servers(app).rows
    real_mark_stopped = rows.mark_stopped
    failures = [OperationalError("UPDATE servers", {}, Exception("connection refused"))] * 2

    def flaky_mark_stopped(server_id: int, reason: str | None) -> None:
        if failures:
            raise failures.pop()
        real_mark_stopped(server_id, reason)

    monkeypatch.setattr(rows, "mark_stopped", flaky_mark_stopped)
    assert get_servers(app).stop_server("ann").outcome == Outcome.STOPPED
    assert not failures
    server = rows.by_id(server_id)
    assert server is not None and server.state == ServerState.STOPPED


class _Starting:
    """A spawner whose process is alive (or exited with `status`); on_look runs at each poll."""

    user_name = "ann"
    service_prefix = "/user/ann/"
    exit_error = Spawner.exit_error
    start_poll_seconds = Spawner.start_poll_seconds

    def __init__(
        self, status: int | None = None, on_look: Callable[[int], None] = lambda looks: None
    ) -> None:
        self.status = status
        self.on_look = on_look
        self.looks = 0

    def poll(self) -> int | None:
        self.looks += 1
        self.on_look(self.looks)
        return self.status


class _VersionHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("X-JupyterHub-Version", "5.2.1")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(params=["127.0.0.1", "::1", "localhost"])
def refused(request: pytest.FixtureRequest) -> Iterator[tuple[str, socket.socket]]:
    """A loopback URL whose port is bound but not listening (connections are refused):
    by IPv4 and IPv6 address, which are connected to directly, and by name, resolved."""
    host = request.param
    sock = socket.socket(socket.AF_INET6 if host == "::1" else socket.AF_INET)
    sock.bind(("127.0.0.1" if host == "localhost" else host, 0))
    shown = f"[{host}]" if host == "::1" else host
    yield f"http://{shown}:{sock.getsockname()[1]}", sock
    sock.close()


class _HTTPServer6(http.server.HTTPServer):
    address_family = socket.AF_INET6


def _counting_get() -> tuple[list[str], Callable[..., requests.Response]]:
    asked: list[str] = []

    def get(url: str, **kwargs: Any) -> requests.Response:
        asked.append(url)
        return requests.get(url, **kwargs)

    return asked, get


def test_wait_for_http_asks_over_http_only_once_the_server_listens(refused) -> None:  # type: ignore[no-untyped-def]
    url, sock = refused
    asked, get = _counting_get()

    def come_up_at_the_fifth_look(looks: int) -> None:
        if looks == 5:
            address, port = sock.getsockname()[:2]
            sock.close()
            server_class = _HTTPServer6 if ":" in address else http.server.HTTPServer
            server = server_class((address, port), _VersionHandler)
            threading.Thread(target=server.serve_forever, daemon=True).start()

    spawner = _Starting(on_look=come_up_at_the_fifth_look)
    assert wait_for_http(spawner, url, get, timeout=30) == "5.2.1"  # type: ignore[arg-type]
    assert spawner.looks >= 5
    assert asked == [f"{url}/user/ann/"]  # never while nothing listened


def test_wait_for_http_fails_when_the_process_exits_or_nothing_listens_in_time(refused) -> None:  # type: ignore[no-untyped-def]
    url, _ = refused
    asked, get = _counting_get()
    with pytest.raises(SpawnerError, match="exited with status 3 before it answered"):
        wait_for_http(_Starting(3), url, get, timeout=30)  # type: ignore[arg-type]
    with pytest.raises(SpawnerError, match=r"didn't respond in 0.3 seconds \(http_timeout\)"):
        wait_for_http(_Starting(), url, get, timeout=0.3)  # type: ignore[arg-type]
    assert asked == []


def test_a_spawner_whose_poll_costs_an_engine_call_is_polled_at_its_pace(refused) -> None:  # type: ignore[no-untyped-def]
    # A container's poll asks the engine, which thirty spawns at once share: while its
    # server is not up yet, it is polled every start_poll_seconds, not at every look.
    url, _ = refused
    container = _Starting()
    container.start_poll_seconds = 60.0
    with pytest.raises(SpawnerError, match="didn't respond in 0.5 seconds"):
        wait_for_http(container, url, requests.get, timeout=0.5)  # type: ignore[arg-type]
    assert container.looks == 1
    process = _Starting()
    with pytest.raises(SpawnerError, match="didn't respond in 0.5 seconds"):
        wait_for_http(process, url, requests.get, timeout=0.5)  # type: ignore[arg-type]
    assert process.looks > 5


@pytest.mark.parametrize("asked", ["the kernel's list", "a connection"])
@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_a_local_server_whose_queue_is_full_listens(
    host: str, asked: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A busy server's full accept queue leaves a connection attempt pending: the look
    # neither waits for it nor takes it for a refusal. The list is read at each look.
    kernel = Listeners(max_age=0)
    kernel.usable = asked == "the kernel's list"
    monkeypatch.setattr(listening, "LISTENERS", kernel)
    sock = socket.socket(socket.AF_INET6 if host == "::1" else socket.AF_INET)
    sock.bind((host, 0))
    url = (
        f"http://[{host}]:{sock.getsockname()[1]}"
        if host == "::1"
        else f"http://{host}:{sock.getsockname()[1]}"
    )
    assert not listener(url)()
    sock.listen(0)
    waiting = [socket.socket(sock.family) for _ in range(3)]
    try:
        for client in waiting:
            client.setblocking(False)
            client.connect_ex(sock.getsockname()[:2])
        listens = listener(url)
        assert all(listens() for _ in range(5))
    finally:
        for client in waiting:
            client.close()
        sock.close()


def test_a_starting_server_is_looked_at_often_then_less_often() -> None:
    looks = [look_again_in(waited / 10) for waited in range(0, 600)]
    assert looks[0] == HTTP_POLL_FIRST and max(looks) == HTTP_POLL_MAX
    assert looks == sorted(looks)
    # A server that came up waits for the next look at most 5 % of its time so far.
    for tenths, look in enumerate(looks):
        assert look <= max(HTTP_POLL_FIRST, tenths / 10 * 0.05)


def test_a_starting_server_is_probed_directly_whatever_proxy_the_environment_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    nowhere = socket.socket()
    nowhere.bind(("127.0.0.1", 0))  # bound, never listening: a proxy that refuses
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{nowhere.getsockname()[1]}")
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{nowhere.getsockname()[1]}")
    server = http.server.HTTPServer(("127.0.0.1", 0), _VersionHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        assert wait_for_http(_Starting(), url, direct_get, timeout=5) == "5.2.1"  # type: ignore[arg-type]
    finally:
        server.shutdown()
        server.server_close()
        nowhere.close()


class _Redirects(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(302)
        self.send_header("Location", f"{self.path}lab?x=1")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_direct_get_reads_status_and_headers_and_never_follows(refused) -> None:  # type: ignore[no-untyped-def]
    url, _ = refused
    with pytest.raises(requests.ConnectionError, match="GET http"):
        direct_get(url + "/user/ann/", timeout=2)
    server = http.server.HTTPServer(("127.0.0.1", 0), _Redirects)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        answer = direct_get(f"http://127.0.0.1:{server.server_address[1]}/user/ann/", timeout=2)
    finally:
        server.shutdown()
        server.server_close()
    assert answer.status_code == 302 and answer.is_redirect
    assert answer.headers["location"] == "/user/ann/lab?x=1"
