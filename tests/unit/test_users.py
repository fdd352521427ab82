"""app/users.py against a real SQLite file migrated to the current schema (``db``)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from app.db import Database
from app.models import APIToken, Server, ServerState
from app.outcomes import DomainError, Invalid, Outcome
from app.tokens import TokenService
from app.users import UserService, normalize_username


@pytest.fixture
def users(db: Database) -> UserService:
    return UserService(db)


@pytest.fixture
def add_server(db: Database, users: UserService) -> Callable[..., Server]:
    """add_server(user, state, url=None, name=""): a Server row for a user (created if new)."""

    def _add(user_name: str, state: ServerState, url: str | None = None, name: str = "") -> Server:
        user = users.get_or_create(user_name)
        with db.write() as session:
            server = Server(user_id=user.id, name=name, state=state, url=url)
            session.add(server)
        return server

    return _add


def count_rows(db: Database, model: type, **where: object) -> int:
    with db.read() as session:
        query = select(func.count()).select_from(model).filter_by(**where)
        return session.scalar(query) or 0


# -- names --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("alice", "alice"),
        ("  Alice\t", "alice"),
        ("ALICE@Example.org", "alice@example.org"),
        ("a.b-c_d+e", "a.b-c_d+e"),
        ("0day", "0day"),
        ("zoë", "zoë"),
        ("a" * 128, "a" * 128),
        ("é" * 64, "é" * 64),  # 128 bytes of UTF-8
    ],
)
def test_normalize_username_valid(name: str, expected: str) -> None:
    assert normalize_username(name) == expected


@pytest.mark.parametrize(
    "name",
    [
        "",
        "   ",
        "_alice",
        ".alice",
        "-alice",
        "al ice",
        "a/b",
        "a:b",
        "a#b",
        "a" * 129,
        "é" * 65,  # 65 characters, 130 bytes
        "a\nb",
    ],
)
def test_normalize_username_invalid(name: str) -> None:
    with pytest.raises(Invalid, match="Invalid username .*at most 128 bytes"):
        normalize_username(name)


def test_normalize_username_needs_a_string() -> None:
    with pytest.raises(Invalid, match="must be a string"):
        normalize_username(42)  # type: ignore[arg-type]


# A name NFKC would change is refused (never merged with the plain one); case is folded
# with lower(), not casefold(), so that ß stays ß (casefold would make "straße" "strasse").
@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Kate", "kate"),
        ("KATE", "kate"),
        (" kate ", "kate"),  # spaces typed around a name (the form, the CLI)
        ("straße", "straße"),
        ("STRASSE", "strasse"),
        ("STRAẞE", "straße"),  # capital sharp s: its lower case is ß, a real case pair
        ("alıce", "alıce"),  # Turkish dotless ı: another letter, so another name
        ("аlice", "аlice"),  # Cyrillic а: another letter (NFKC keeps it), another name
        ("ΟΔΟΣ", "οδος"),
    ],
)
def test_normalize_username_folds_case(name: str, expected: str) -> None:
    assert normalize_username(name) == expected


@pytest.mark.parametrize(
    "name",
    [
        "\u212aate",  # Kelvin sign K + ate: NFKC makes it "Kate"
        " kate\u3000",  # ideographic space
        "kate\u00a0",  # no-break space
        "\u00a0kate",
        "ｋａｔｅ",  # fullwidth
        "ＡＬＩＣＥ",
        "𝐚𝐥𝐢𝐜𝐞",  # mathematical bold
        "𝕒𝕝𝕚𝕔𝕖",  # double-struck
        "ﬁona",  # the ligature ﬁ
        "kate\u2002",  # en space
        "ａlice",  # one fullwidth letter among plain ones
        "\u2126hm",  # Ohm sign (NFKC: Greek omega)
        "ⓐlice",  # circled letter
        "alice\u00b2",  # superscript two
        "e\u0301",  # e + combining acute: NFC composes it to é
        "İstanbul",  # capital I with dot: its lower case carries a combining dot
        "a\u200db",  # zero-width joiner (NFKC keeps it; no letter or digit)
        "a\u00adb",  # soft hyphen
    ],
)
def test_normalize_username_refuses_look_alikes(name: str) -> None:
    with pytest.raises(Invalid, match="Invalid username"):
        normalize_username(name)


def test_a_look_alike_is_named_as_such() -> None:
    with pytest.raises(Invalid, match="look like"):
        normalize_username("\u212aate")


@pytest.mark.parametrize("name", ["Kate", "straße", "οδος", "alıce", "zoë"])
def test_normalize_username_is_idempotent(name: str) -> None:
    once = normalize_username(name)
    assert normalize_username(once) == once


# -- users --------------------------------------------------------------------


def test_create_many_skips_existing_and_returns_created(users: UserService) -> None:
    users.get_or_create("alice")
    created = users.create_many(["Alice", "bob", " bob ", "carol"], admin=True)
    assert [u.name for u in created] == ["bob", "carol"]
    assert all(u.admin and u.servers == [] for u in created)
    assert users.count() == 3
    alice = users.get("alice")
    assert alice is not None and not alice.admin


def test_create_many_with_an_invalid_name_creates_none(users: UserService) -> None:
    with pytest.raises(Invalid):
        users.create_many(["dave", "no/slash"])
    assert users.count() == 0


def test_list_pages_by_id_with_total(users: UserService) -> None:
    users.create_many(["u1", "u2", "u3", "u4", "u5"])
    page, total = users.page(offset=1, limit=2)
    assert [u.name for u in page] == ["u2", "u3"]
    assert total == 5
    rest, _ = users.page(offset=4)
    assert [u.name for u in rest] == ["u5"]


@pytest.fixture
def users_in_states(users: UserService, add_server: Callable[..., Server]) -> None:
    """One user per server state, plus one without servers and one with two servers."""
    users.create_many(["never"])
    add_server("stopped", ServerState.STOPPED)
    add_server("failed", ServerState.FAILED)
    add_server("spawning", ServerState.SPAWNING)
    add_server("stopping", ServerState.STOPPING, url="http://127.0.0.1:1")
    add_server("running", ServerState.RUNNING, url="http://127.0.0.1:2")
    # Running without a URL is not ready (ready = not pending and has a URL).
    add_server("no-url", ServerState.RUNNING)
    add_server("named", ServerState.STOPPED)
    add_server("named", ServerState.RUNNING, url="http://127.0.0.1:3", name="lab")


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (
            None,
            {"never", "stopped", "failed", "spawning", "stopping", "running", "no-url", "named"},
        ),
        ("active", {"spawning", "stopping", "running", "named"}),
        ("ready", {"running", "named"}),
        ("inactive", {"never", "stopped", "failed", "no-url"}),
    ],
)
def test_list_filters_by_state(
    users: UserService, users_in_states: None, state: str | None, expected: set[str]
) -> None:
    page, total = users.page(state=state)
    assert {u.name for u in page} == expected
    assert total == len(expected)


def test_list_state_filter_counts_before_paging(users: UserService, users_in_states: None) -> None:
    page, total = users.page(state="active", limit=1)
    assert len(page) == 1
    assert total == 4


def test_list_unknown_state(users: UserService) -> None:
    with pytest.raises(Invalid, match="active, ready, inactive"):
        users.page(state="sleepy")


def test_update_renames_and_sets_admin(users: UserService) -> None:
    users.create_many(["alice"])
    user = users.update("alice", new_name="alicia", admin=True)
    assert (user.name, user.admin) == ("alicia", True)
    assert users.get("alice") is None
    renamed = users.get("alicia")
    assert renamed is not None and renamed.admin


@pytest.mark.parametrize(
    ("name", "new_name", "outcome"),
    [
        ("alice", "bob", Outcome.CONFLICT),
        ("nobody", "somebody", Outcome.NOT_FOUND),
        ("nobody", None, Outcome.NOT_FOUND),
    ],
)
def test_update_errors(
    users: UserService, name: str, new_name: str | None, outcome: Outcome
) -> None:
    users.create_many(["alice", "bob"])
    with pytest.raises(DomainError) as info:
        users.update(name, new_name=new_name, admin=True)
    assert info.value.outcome == outcome
    assert {u.name: u.admin for u in users.page()[0]} == {"alice": False, "bob": False}


def test_update_refuses_rename_while_a_server_is_active(
    users: UserService, add_server: Callable[..., Server]
) -> None:
    add_server("alice", ServerState.RUNNING, url="http://127.0.0.1:2")
    with pytest.raises(Invalid, match="while a server is active"):
        users.update("alice", new_name="alicia", admin=None)
    assert users.get("alice") is not None


def test_delete_cascades_to_servers_and_tokens(
    db: Database, users: UserService, add_server: Callable[..., Server]
) -> None:
    server = add_server("alice", ServerState.RUNNING, url="http://127.0.0.1:2")
    add_server("bob", ServerState.STOPPED)
    alice, bob = users.get("alice"), users.get("bob")
    assert alice is not None and bob is not None
    tokens = TokenService(db)
    tokens.create(alice.id, note="cli")
    tokens.create(alice.id, server_id=server.id)
    tokens.create(bob.id)

    users.delete("alice")

    assert users.get("alice") is None
    assert count_rows(db, Server, user_id=alice.id) == 0
    assert count_rows(db, APIToken, user_id=alice.id) == 0
    assert count_rows(db, Server, user_id=bob.id) == 1
    assert count_rows(db, APIToken, user_id=bob.id) == 1


def test_activity_only_moves_forward(users: UserService, add_server: Callable[..., Server]) -> None:
    add_server("alice", ServerState.RUNNING, url="http://127.0.0.1:2", name="lab")
    alice = users.get("alice")
    assert alice is not None
    early, late = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)
    users.record_activity(alice.id, late, {"lab": late, "unknown": late})
    users.record_activity(alice.id, early, {"lab": early})
    alice = users.get("alice")
    assert alice is not None and alice.last_activity == late
    assert alice.servers[0].last_activity == late


def test_a_user_comes_with_servers_groups_and_the_way_back_to_the_user(
    users: UserService, add_server: Callable[..., Server], db: Database
) -> None:
    # What the user model reads, after the session is gone (one statement loads it all).
    add_server("alice", ServerState.RUNNING, "http://127.0.0.1:1")
    add_server("alice", ServerState.STOPPED, name="extra")
    from app.groups import GroupService

    GroupService(db).create("team", members=["alice"])
    user = users.get("alice")
    assert user is not None
    assert sorted(s.name for s in user.servers) == ["", "extra"]
    assert all(s.user is user for s in user.servers)
    assert [g.name for g in user.groups] == ["team"]
