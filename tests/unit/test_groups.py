"""app/groups.py against a real SQLite file migrated to the current schema (``db``)."""

from __future__ import annotations

import pytest

from app.db import Database
from app.groups import GroupService, validate_group_name
from app.models import Group
from app.outcomes import Conflict, Invalid, NotFound
from app.users import UserService


@pytest.fixture
def users(db: Database) -> UserService:
    """A UserService with alice, bob and carol."""
    service = UserService(db)
    service.create_many(["alice", "bob", "carol"])
    return service


@pytest.fixture
def groups(db: Database, users: UserService) -> GroupService:
    return GroupService(db)


def members(group: Group) -> list[str]:
    """The names of a group's members, sorted (as the group model shows them)."""
    return sorted(u.name for u in group.users)


def all_names(groups: GroupService) -> list[str]:
    return [g.name for g in groups.page()[0]]


@pytest.mark.parametrize("name", ["physics", "a", "x" * 255, "lab.b12", "ops@site", "a:b~c+d-e_f"])
def test_valid_group_names(name: str) -> None:
    assert validate_group_name(name) == name


@pytest.mark.parametrize("name", ["", "has space", "a/b", "x" * 256, "a\nb", 7, None])
def test_invalid_group_names(name: object) -> None:
    with pytest.raises(Invalid, match="Invalid group name"):
        validate_group_name(name)


def test_create_many_with_members(groups: GroupService) -> None:
    created = groups.create_many(["physics", "chem", "physics"], members=["Bob", "alice", "bob"])
    assert [g.name for g in created] == ["physics", "chem"]
    assert [members(g) for g in created] == [["alice", "bob"], ["alice", "bob"]]
    assert members(groups.get("chem")) == ["alice", "bob"]


def test_create_many_is_all_or_none_on_an_existing_name(groups: GroupService) -> None:
    groups.create("bio")
    with pytest.raises(Conflict, match="Group bio already exists"):
        groups.create_many(["geo", "bio"])
    assert all_names(groups) == ["bio"]


@pytest.mark.parametrize(
    ("names", "usernames", "message"),
    [
        (["geo", "has space"], [], "Invalid group name"),
        (["geo"], ["alice", "ghost"], "No such user: ghost"),
        (["geo"], ["alice", "no/slash"], "Invalid username"),
        (["geo"], ["alice", "ａｌｉｃｅ"], "Invalid username"),  # never merged into alice
        (["geo"], ["\u212aate"], "Invalid username"),
    ],
)
def test_create_many_refuses_and_creates_none(
    groups: GroupService, names: list[str], usernames: list[str], message: str
) -> None:
    with pytest.raises(Invalid, match=message):
        groups.create_many(names, members=usernames)
    assert all_names(groups) == []


def test_members_are_named_in_any_case(groups: GroupService) -> None:
    assert members(groups.create("bio", members=["CAROL", " Carol "])) == ["carol"]


def test_create_one_conflicts_with_an_existing_group(groups: GroupService) -> None:
    made = groups.create("bio", members=["carol"])
    assert members(made) == ["carol"] and made.properties == {}
    with pytest.raises(Conflict, match="Group bio already exists"):
        groups.create("bio")
    assert members(groups.get("bio")) == ["carol"]


def test_page_orders_by_id_with_total(groups: GroupService) -> None:
    groups.create_many(["g1", "g2", "g3", "g4"])
    page, total = groups.page(offset=1, limit=2)
    assert ([g.name for g in page], total) == (["g2", "g3"], 4)


def test_page_of_some_names_counts_only_those(groups: GroupService) -> None:
    groups.create_many(["g1", "g2", "g3", "g4"])
    page, total = groups.page(limit=1, names=["g4", "g2", "nope"])
    assert ([g.name for g in page], total) == (["g2"], 2)
    assert groups.page(names=[]) == ([], 0)


@pytest.mark.parametrize(
    ("method", "args"),
    [
        ("get", ()),
        ("delete", ()),
        ("add_members", (["alice"],)),
        ("remove_members", (["alice"],)),
        ("properties", ()),
        ("set_properties", ({"a": 1},)),
    ],
)
def test_unknown_group_is_not_found(groups: GroupService, method: str, args: tuple) -> None:
    with pytest.raises(NotFound, match="No such group: nope"):
        getattr(groups, method)("nope", *args)


def test_add_members_keeps_existing_ones(groups: GroupService) -> None:
    groups.create("team", members=["bob"])
    group = groups.add_members("team", ["carol", "bob", "alice"])
    assert members(group) == ["alice", "bob", "carol"]
    assert members(groups.get("team")) == ["alice", "bob", "carol"]


def test_add_members_with_an_unknown_user_adds_none(groups: GroupService) -> None:
    groups.create("team", members=["bob"])
    with pytest.raises(Invalid, match="No such user: ghost"):
        groups.add_members("team", ["alice", "ghost"])
    assert members(groups.get("team")) == ["bob"]


def test_remove_members(groups: GroupService) -> None:
    groups.create("team", members=["alice", "bob"])
    assert members(groups.remove_members("team", ["alice", "carol"])) == ["bob"]
    with pytest.raises(Invalid, match="No such user: ghost"):
        groups.remove_members("team", ["bob", "ghost"])
    assert members(groups.get("team")) == ["bob"]


def test_properties_are_replaced(groups: GroupService) -> None:
    groups.create("team")
    assert groups.properties("team") == {}
    groups.set_properties("team", {"lab": "B12", "size": 3})
    assert groups.set_properties("team", {"size": 4}).properties == {"size": 4}
    assert groups.properties("team") == {"size": 4}


def test_delete_keeps_the_members(groups: GroupService, users: UserService) -> None:
    groups.create("team", members=["alice"])
    groups.delete("team")
    assert all_names(groups) == []
    assert users.get("alice") is not None
    assert groups.group_names_of("alice") == frozenset()


def test_group_names_of(groups: GroupService, users: UserService) -> None:
    groups.create_many(["physics", "chem"], members=["alice"])
    groups.create("ops", members=["bob"])
    assert groups.group_names_of("alice") == {"physics", "chem"}
    assert groups.group_names_of("carol") == frozenset()
    users.delete("bob")
    assert members(groups.get("ops")) == []
