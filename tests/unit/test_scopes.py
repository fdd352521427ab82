"""app/scopes.py and Identity's use of it: JupyterHub's scope rules as tables."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from app.config import load
from app.db import Database
from app.grants import HubGrants
from app.groups import GroupService
from app.identity import ANONYMOUS, Identity
from app.models import APIToken, User
from app.roles import RoleService
from app.scopes import (
    ScopeError,
    ScopeSet,
    check_scopes,
    covers,
    expand_scopes,
    intersect,
    role_scopes,
    shown_scopes,
)
from app.tokens import Service

GROUPS = {"alice": {"team"}, "bob": set(), "carol": {"team", "ops"}}


def grants(*scopes: str, user: str | None = None) -> ScopeSet:
    return ScopeSet(expand_scopes(scopes, user=user), lambda name: GROUPS.get(name, set()))


@pytest.mark.parametrize(
    ("scope", "implied"),
    [
        ("admin:users", {"users", "read:users", "list:users", "read:users:name", "delete:users"}),
        ("users", {"read:users", "users:activity", "read:users:activity"}),
        ("read:users", {"read:users:name", "read:users:groups", "read:users:activity"}),
        ("admin:servers", {"servers", "read:servers", "delete:servers", "read:users:name"}),
        ("servers", {"read:servers", "delete:servers"}),
        ("tokens", {"read:tokens"}),
        ("admin:groups", {"groups", "read:groups", "list:groups", "delete:groups"}),
        ("read:services", {"read:services:name"}),
    ],
)
def test_a_scope_implies_its_subscopes(scope: str, implied: set[str]) -> None:
    assert implied <= expand_scopes([scope])


@pytest.mark.parametrize(
    ("scope", "not_implied"),
    [
        ("read:users", {"users", "admin:users", "read:servers", "servers"}),
        ("servers", {"admin:servers", "access:servers", "read:users"}),
        ("read:tokens", {"tokens"}),
        ("groups", {"admin:groups", "delete:groups"}),
        ("proxy", {"admin:users", "read:metrics"}),
    ],
)
def test_a_scope_implies_nothing_higher_or_beside_it(scope: str, not_implied: set[str]) -> None:
    assert not (not_implied & expand_scopes([scope]))


def test_filters_carry_over_to_subscopes_and_owner_filters_are_filled_in() -> None:
    assert expand_scopes(["servers!user"], user="alice") == {
        "servers!user=alice",
        "read:servers!user=alice",
        "start:servers!user=alice",
        "delete:servers!user=alice",
        "read:users:name!user=alice",
    }
    # A server filter does not reach user-wide subscopes.
    assert expand_scopes(["read:servers!server=alice/lab"]) == {"read:servers!server=alice/lab"}
    # A bare filter without an owner grants nothing (rather than everything).
    assert expand_scopes(["servers!user"]) == frozenset()


def test_self_is_the_user_role_and_inherit_is_left_to_the_caller() -> None:
    mine = expand_scopes(["self"], user="alice")
    assert {"servers!user=alice", "tokens!user=alice", "access:servers!user=alice"} <= mine
    assert all(s.endswith("!user=alice") for s in mine)
    assert expand_scopes(["self"]) == frozenset()
    assert expand_scopes(["inherit"], user="alice") == frozenset()
    assert role_scopes("user", user="alice") == mine


def test_admin_role_holds_every_scope_the_hub_checks() -> None:
    admin = grants(*role_scopes("admin"))
    for scope in (
        "admin:users",
        "read:users",
        "list:users",
        "delete:users",
        "users:activity",
        "servers",
        "delete:servers",
        "read:servers",
        "access:servers",
        "tokens",
        "read:tokens",
        "groups",
        "admin:groups",
        "read:groups",
        "list:services",
        "read:services",
        "proxy",
        "read:metrics",
        "read:hub",
    ):
        assert admin.unfiltered(scope), scope


@pytest.mark.parametrize(
    ("have", "scope", "target", "allowed"),
    [
        (("read:users",), "read:users", {"user": "bob"}, True),
        (("read:users!user=alice",), "read:users", {"user": "alice"}, True),
        (("read:users!user=alice",), "read:users", {"user": "bob"}, False),
        (("read:users!user=alice",), "read:users:name", {"user": "alice"}, True),
        (("read:users!user=alice",), "users", {"user": "alice"}, False),
        # a user filter covers that user's servers
        (("servers!user=alice",), "servers", {"server": "alice/lab"}, True),
        (("servers!user=alice",), "servers", {"server": "bob/lab"}, False),
        (("servers!server=alice/lab",), "servers", {"server": "alice/lab"}, True),
        (("servers!server=alice/lab",), "servers", {"server": "alice/"}, False),
        # ... but a server filter does not cover the user
        (("servers!server=alice/lab",), "servers", {"user": "alice"}, False),
        # a group filter covers its members and their servers
        (("read:users!group=team",), "read:users", {"user": "carol"}, True),
        (("read:users!group=team",), "read:users", {"user": "bob"}, False),
        (("servers!group=ops",), "servers", {"server": "carol/x"}, True),
        (("servers!group=ops",), "servers", {"server": "alice/x"}, False),
        (("groups!group=team",), "groups", {"group": "team"}, True),
        (("groups!group=team",), "groups", {"group": "ops"}, False),
        (("read:services!service=culler",), "read:services", {"service": "culler"}, True),
        (("read:services!service=culler",), "read:services", {"service": "other"}, False),
        (("admin:users",), "servers", {"user": "alice"}, False),
    ],
)
def test_filters(have: tuple[str, ...], scope: str, target: dict[str, str], allowed: bool) -> None:
    assert grants(*have).allows(scope, **target) is allowed


@pytest.mark.parametrize(
    ("scopes", "message"),
    [
        (["nope"], "Scope 'nope' does not exist"),
        (["all"], "Scope 'all' does not exist"),
        (["servers!nobody=x"], "Scope filter '!nobody=x'"),
        (["servers!user="], "Scope filter '!user='"),
    ],
)
def test_unknown_scopes_and_filters_are_refused(scopes: list[str], message: str) -> None:
    with pytest.raises(ScopeError, match=message):
        check_scopes(scopes)


def test_known_scopes_and_filters_pass() -> None:
    check_scopes(["servers!user", "read:users!user=alice", "groups!group=x", "proxy", "inherit"])


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ({"read:users"}, {"read:users!user=alice"}, {"read:users!user=alice"}),
        ({"read:users!user=alice"}, {"read:users!user=bob"}, set()),
        ({"servers!server=alice/x"}, {"servers!user=alice"}, {"servers!server=alice/x"}),
        ({"servers!server=bob/x"}, {"servers!user=alice"}, set()),
        ({"proxy", "servers"}, {"servers"}, {"servers"}),
    ],
)
def test_intersection(a: set[str], b: set[str], expected: set[str]) -> None:
    assert intersect(frozenset(a), frozenset(b)) == expected
    assert intersect(frozenset(b), frozenset(a)) == expected


def test_covers_names_what_is_missing() -> None:
    alice = grants("self", user="alice")
    assert covers(alice, expand_scopes(["read:users!user=alice"])) == frozenset()
    assert covers(alice, frozenset({"read:users!user=bob"})) == {"read:users!user=bob"}
    assert covers(alice, frozenset({"read:users"})) == {"read:users"}


# -- Identity: owner's rights narrowed by the token's -------------------------

ALICE = User(name="alice", admin=False)
ROOT = User(name="root", admin=True)


def token(*scopes: str) -> APIToken:
    return APIToken(scopes=list(scopes))


@pytest.mark.parametrize(
    ("identity", "scope", "target", "allowed"),
    [
        (Identity(user=ALICE, via_cookie=True), "servers", {"user": "alice"}, True),
        (Identity(user=ALICE, via_cookie=True), "servers", {"user": "bob"}, False),
        (Identity(user=ALICE, via_cookie=True), "servers", {"server": "alice/lab"}, True),
        (Identity(user=ALICE, token=token()), "tokens", {"user": "alice"}, True),
        (Identity(user=ALICE, token=token("inherit")), "access:servers", {"user": "alice"}, True),
        # a token never exceeds its owner ...
        (Identity(user=ALICE, token=token("admin:users")), "read:users", {"user": "bob"}, False),
        # ... and a narrow token is narrow
        (Identity(user=ALICE, token=token("read:users!user")), "servers", {"user": "alice"}, False),
        (
            Identity(user=ALICE, token=token("read:users!user")),
            "read:users",
            {"user": "alice"},
            True,
        ),
        (Identity(user=ROOT, via_cookie=True), "servers", {"user": "anyone"}, True),
        (Identity(user=ROOT, token=token("read:users")), "read:users", {"user": "x"}, True),
        (Identity(user=ROOT, token=token("read:users")), "servers", {"user": "x"}, False),
        (Identity(user=ROOT, token=token("servers!user=x")), "servers", {"user": "x"}, True),
        (Identity(user=ROOT, token=token("servers!user=x")), "servers", {"user": "y"}, False),
        (Identity(service=Service("culler", admin=True)), "delete:servers", {"user": "x"}, True),
        (Identity(service=Service("viewer", admin=False)), "read:users", {"user": "x"}, False),
        (ANONYMOUS, "read:users", {"user": "x"}, False),
    ],
)
def test_identity_has_scope(
    identity: Identity, scope: str, target: dict[str, str], allowed: bool, grants: HubGrants
) -> None:
    assert replace(identity, grants=grants).has_scope(scope, **target) is allowed


@pytest.mark.parametrize(
    ("identity", "scope", "unfiltered"),
    [
        (Identity(user=ROOT, via_cookie=True), "admin:users", True),
        (Identity(user=ROOT, via_cookie=True), "proxy", True),
        (Identity(user=ROOT, token=token("read:users")), "read:users", True),
        (Identity(user=ROOT, token=token("read:users")), "list:users", False),
        (Identity(user=ROOT, token=token("servers!user=x")), "servers", False),
        (Identity(user=ALICE, via_cookie=True), "read:users", False),
        (Identity(user=ALICE, token=token("proxy")), "proxy", False),
        (Identity(service=Service("culler", admin=True)), "proxy", True),
        (ANONYMOUS, "proxy", False),
    ],
)
def test_identity_unfiltered_scope(
    identity: Identity, scope: str, unfiltered: bool, grants: HubGrants
) -> None:
    assert replace(identity, grants=grants).has_unfiltered_scope(scope) is unfiltered


def test_identity_scopes_are_the_intersection_of_owner_and_token(grants: HubGrants) -> None:
    full = Identity(user=ALICE, token=token(), grants=grants)
    assert full.scopes == role_scopes("user", user="alice") | {"identify", "(no_scope)"}
    narrow = Identity(user=ALICE, token=token("read:users!user", "admin:users"), grants=grants)
    assert "admin:users" not in narrow.scopes
    assert "read:users!user=alice" in narrow.scopes
    assert "servers!user=alice" not in narrow.scopes


def test_scopes_are_shown_as_jupyterhub_shows_them() -> None:
    held = expand_scopes(["servers", "self"], user="ann") | {"(no_scope)", "identify"}
    shown = shown_scopes(held)
    assert "servers" in shown and "start:servers" in shown
    assert "servers!user=ann" not in shown and "(no_scope)" not in shown
    assert "tokens!user=ann" in shown  # held only for herself: shown with its filter
    assert shown == sorted(shown)


def test_an_identity_reads_its_owners_grants_from_the_object_passed_in(
    db: Database, tmp_path: Path
) -> None:
    """No app needed, and no default assumed: admin_access comes from the grants given."""
    settings = load(environ={}, overrides={"data_dir": str(tmp_path), "admin_access": True})
    grants = HubGrants(db, settings, RoleService(db), GroupService(db))
    assert Identity(user=ROOT, via_cookie=True, grants=grants).has_scope("access:servers", "bob")
    with pytest.raises(TypeError, match="needs the grants"):
        Identity(user=ALICE, via_cookie=True).has_scope("servers", user="alice")
    assert not ANONYMOUS.has_scope("read:users")  # the anonymous one needs none
