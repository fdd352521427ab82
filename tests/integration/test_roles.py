"""Roles from load_roles through a running hub: stored at start-up, resolved per request."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.integration.conftest import Hub

pytestmark = pytest.mark.integration

ROLES = [
    {
        "name": "team-lead",
        "description": "Sees the team",
        "scopes": ["list:users!group=team", "read:users:activity!group=team"],
        "users": ["lead"],
    },
    {"name": "admin", "users": ["boss"]},
]


def test_a_role_with_a_group_filter_lists_the_team_only(hub_factory: Callable[..., Hub]) -> None:
    hub = hub_factory(load_roles=ROLES)
    assert hub.api("POST", "/users", json={"usernames": ["alice", "bob", "carol"]}).ok
    assert hub.api("POST", "/groups/team", json={"users": ["alice", "bob"]}).status_code == 201
    lead = hub.token("lead")
    listed = hub.api("GET", "/users?sort=name", token=lead).json()
    assert [u["name"] for u in listed] == ["alice", "bob"]
    assert set(listed[0]) == {"kind", "name", "admin", "user_info", "last_activity"}
    assert hub.api("GET", "/users/carol", token=lead).status_code == 403
    assert hub.api("GET", "/users/lead").json()["roles"] == ["team-lead", "user"]
    assert hub.api("GET", "/users/boss").json()["admin"] is True
    # A role's membership is the setting's: a restart without lead takes it away.
    hub.restart(load_roles=[{"name": "team-lead", "scopes": ["list:users"]}])
    assert [u["name"] for u in hub.api("GET", "/users", token=lead).json()] == ["lead"]
