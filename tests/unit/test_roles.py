"""app/roles.py: load_roles checked, stored and resolved into scopes at request time."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from werkzeug.test import TestResponse

from app.db import get_db
from app.grants import granted_scopes
from app.groups import get_groups
from app.role_specs import check_role_specs
from app.roles import get_roles
from app.users import get_users

SERVICES = ["culler"]


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("reader", 'each role needs {"name": ..., "scopes": [...]}'),
        ({"scopes": []}, 'each role needs {"name"'),
        ({"name": "Reader"}, "invalid role name 'Reader'"),
        ({"name": "ab"}, "invalid role name 'ab'"),
        ({"name": "reader", "colour": "red"}, "unknown keys ['colour']"),
        ({"name": "reader", "scopes": "read:users"}, "'scopes' must be a list of strings"),
        ({"name": "reader", "users": [1]}, "'users' must be a list of strings"),
        ({"name": "reader", "description": 5}, "'description' must be a string"),
        ({"name": "reader", "scopes": ["read:users", "fly", "swim"]}, "'fly', 'swim' do not"),
        ({"name": "reader", "scopes": ["read:users!planet=x"]}, "filter '!planet=x'"),
        ({"name": "reader", "services": ["nosuch"]}, "no such service 'nosuch'"),
        ({"name": "admin", "scopes": ["read:users"]}, "default role 'admin' cannot be"),
        ({"name": "server", "users": ["alice"]}, "default role 'server' is given by the hub"),
        ({"name": "user", "groups": ["team"]}, "default role 'user' is given by the hub"),
        ({"name": "admin", "services": ["culler"]}, '"admin": true in its entry'),
    ],
)
def test_bad_role_specs_are_refused(spec: Any, fragment: str) -> None:
    with pytest.raises(ValueError) as info:
        check_role_specs([spec], SERVICES)
    assert fragment in str(info.value)


def test_a_role_defined_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="role 'reader' is defined twice"):
        check_role_specs([{"name": "reader"}, {"name": "reader"}], SERVICES)


def test_good_role_specs_pass() -> None:
    check_role_specs(
        [
            {"name": "reader", "scopes": ["read:users", "admin-ui", "shutdown"], "users": ["a"]},
            {"name": "user", "scopes": ["self", "read:users:name"]},
            {"name": "admin", "users": ["root"]},
            {"name": "culling", "scopes": ["admin:servers"], "services": ["culler"]},
        ],
        SERVICES,
    )


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app(services=[{"name": "culler", "api_token": "culler-token-123"}])


def test_load_stores_roles_with_exactly_their_members(app: Flask) -> None:
    roles = get_roles(app)
    roles.load(
        [
            {"name": "reader", "scopes": ["list:users"], "users": ["alice"], "groups": ["team"]},
            {"name": "culling", "scopes": ["admin:servers"], "services": ["culler"]},
            {"name": "admin", "users": ["root"]},
        ]
    )
    alice, root = get_users(app).get("alice"), get_users(app).get("root")
    assert alice is not None and [r.name for r in alice.roles] == ["reader"]
    assert root is not None and root.admin
    assert [r.name for r in get_groups(app).get("team").roles] == ["reader"]
    assert roles.service_roles() == {"culler": ["culling"]}
    assert roles.scopes_of_service("culler") == ["admin:servers"]
    assert "list:users" in granted_scopes(get_db(app), alice.id)
    # Loaded again with fewer members and without a role: they are gone (a service's
    # scopes, which a process keeps once read, too).
    roles.load([{"name": "reader", "scopes": ["read:users"], "groups": ["team"]}])
    alice = get_users(app).get("alice")
    assert alice is not None and alice.roles == []
    assert roles.service_roles() == {}
    assert roles.scopes_of_service("culler") == []
    assert granted_scopes(get_db(app), alice.id) == ["self"]


def test_roles_reach_users_through_groups_and_the_user_role_can_be_redefined(app: Flask) -> None:
    roles = get_roles(app)
    roles.load(
        [
            {"name": "reader", "scopes": ["read:users!group=team"], "groups": ["team"]},
            {"name": "user", "scopes": ["self", "read:users:name"]},
        ]
    )
    bob = get_users(app).get_or_create("bob")
    assert sorted(granted_scopes(get_db(app), bob.id)) == ["read:users:name", "self"]
    get_groups(app).add_members("team", ["bob"])
    assert sorted(granted_scopes(get_db(app), bob.id)) == [
        "read:users!group=team",
        "read:users:name",
        "self",
    ]


Api = Callable[..., TestResponse]


@pytest.fixture
def api(app: Flask, make_token: Callable[..., str]) -> Api:
    client = app.test_client()
    admin = make_token(app, "admin", admin=True)

    def call(method: str, path: str, body: Any = None, *, token: str = admin) -> TestResponse:
        kwargs = {} if body is None else {"json": body}
        headers = {"Authorization": f"token {token}"}
        return client.open(f"/hub/api{path}", method=method, headers=headers, **kwargs)

    return call


def test_a_role_takes_effect_at_the_next_request(
    app: Flask, api: Api, make_token: Callable[..., str]
) -> None:
    bob = make_token(app, "bob")
    get_users(app).create_many(["alice"])
    assert [u["name"] for u in api("GET", "/users", token=bob).json] == ["bob"]
    get_roles(app).load([{"name": "lister", "scopes": ["list:users"], "users": ["bob"]}])
    assert {u["name"] for u in api("GET", "/users", token=bob).json} == {"admin", "alice", "bob"}
    assert api("GET", "/users/bob").json["roles"] == ["lister", "user"]
    assert api("GET", "/users?name_filter=bob").json[0]["roles"] == ["lister", "user"]
    assert api("GET", "/users/admin").json["roles"] == ["admin", "user"]


def test_patch_gives_roles_and_the_admin_role_is_the_admin_flag(app: Flask, api: Api) -> None:
    get_roles(app).load([{"name": "lister", "scopes": ["list:users"]}])
    get_users(app).create_many(["alice"])
    given = api("PATCH", "/users/alice", {"roles": ["lister", "admin"]})
    assert given.status_code == 200, given.text
    assert given.json["roles"] == ["admin", "lister", "user"] and given.json["admin"] is True
    taken = api("PATCH", "/users/alice", {"roles": ["user"]}).json
    assert taken["roles"] == ["user"] and taken["admin"] is False
    refused = api("PATCH", "/users/alice", {"roles": ["nosuch"]})
    assert refused.status_code == 400 and "No such role: nosuch" in refused.json["message"]
    clash = api("PATCH", "/users/alice", {"roles": ["admin"], "admin": False})
    assert clash.status_code == 400 and "disagree" in clash.json["message"]


def test_only_an_admin_modifies_admins_or_gives_roles(
    app: Flask, api: Api, make_token: Callable[..., str]
) -> None:
    get_roles(app).load([{"name": "manager", "scopes": ["admin:users"], "users": ["mona"]}])
    mona = make_token(app, "mona")
    get_users(app).create_many(["alice"])
    get_users(app).create_many(["bob"], admin=True)
    for name, body, fragment in (
        ("bob", {"name": "robert"}, "Only admins can modify other admins"),
        ("alice", {"roles": ["manager"]}, "or give roles"),
        ("alice", {"admin": True}, "Only admins can grant admin permissions"),
    ):
        refused = api("PATCH", f"/users/{name}", body, token=mona)
        assert refused.status_code == 403 and fragment in refused.json["message"], refused.text
    renamed = api("PATCH", "/users/alice", {"name": "alicia"}, token=mona)
    assert renamed.status_code == 200 and renamed.json["name"] == "alicia"


def test_group_and_service_models_show_their_roles(app: Flask, api: Api) -> None:
    get_roles(app).load(
        [
            {"name": "reader", "scopes": ["read:users"], "groups": ["team"]},
            {"name": "culling", "scopes": ["admin:servers"], "services": ["culler"]},
        ]
    )
    assert api("GET", "/groups/team").json["roles"] == ["reader"]
    assert api("GET", "/services/culler").json["roles"] == ["culling"]
    # The service's role gives it its scopes.
    me = api("GET", "/user", token="culler-token-123").json
    assert "admin:servers" in me["scopes"] and "delete:servers" in me["scopes"]


def test_a_token_may_be_given_a_stored_role(
    app: Flask, api: Api, make_token: Callable[..., str]
) -> None:
    get_roles(app).load([{"name": "lister", "scopes": ["list:users"], "users": ["bob"]}])
    bob = make_token(app, "bob")
    made = api("POST", "/users/bob/tokens", {"roles": ["lister"]}, token=bob)
    assert made.status_code == 201, made.text
    assert "list:users" in made.json["scopes"] and "read:tokens!user=bob" not in made.json["scopes"]
    unknown = api("POST", "/users/bob/tokens", {"roles": ["nosuch"]}, token=bob)
    assert unknown.status_code == 400 and "Role 'nosuch' does not exist" in unknown.json["message"]


@pytest.mark.parametrize(
    "body", [{"scopes": []}, {"roles": []}, {"roles": [], "scopes": None}, {"scopes": ["identify"]}]
)
def test_a_token_asked_for_with_no_scopes_only_identifies_its_owner(api: Api, body: dict) -> None:
    # JupyterHub 6.1: empty scopes or roles make a token that identifies its owner;
    # only a request naming neither carries all of its owner's rights.
    made = api("POST", "/users/admin/tokens", body)
    assert made.status_code == 201, made.text
    assert made.json["scopes"] == ["read:users:groups!user=admin", "read:users:name!user=admin"]
    token = made.json["token"]
    assert api("GET", "/user", token=token).json["name"] == "admin"
    assert api("GET", "/info", token=token).status_code == 403
    assert api("POST", "/users/admin/tokens", {}, token=token).status_code == 403


def test_a_token_asked_for_with_nothing_named_carries_its_owners_rights(api: Api) -> None:
    made = api("POST", "/users/admin/tokens", {"scopes": None, "note": "all"})
    assert made.status_code == 201, made.text
    assert "admin:users" in made.json["scopes"]


@pytest.mark.parametrize(
    "body", [{"scopes": ["read:users"], "roles": ["user"]}, {"scopes": [], "roles": []}]
)
def test_a_token_asked_for_with_both_scopes_and_roles_is_400(api: Api, body: dict) -> None:
    refused = api("POST", "/users/admin/tokens", body)
    assert refused.status_code == 400
    assert refused.json["message"] == (
        "Can only assign one of scopes or roles when creating tokens."
    )


@pytest.mark.parametrize(
    "scope",
    # (Unfiltered "shares" includes access:servers, which admins hold only with admin_access.)
    [
        "admin-ui",
        "read:roles:users",
        "admin:services",
        "access:services",
        "shutdown",
        "shares!user=admin",
    ],
)
def test_every_jupyterhub_scope_is_known_to_token_requests(api: Api, scope: str) -> None:
    made = api("POST", "/users/admin/tokens", {"scopes": [scope]})
    assert made.status_code == 201, made.text


def test_unknown_scopes_are_400_naming_them(api: Api) -> None:
    refused = api("POST", "/users/admin/tokens", {"scopes": ["read:users", "fly", "swim"]})
    assert refused.status_code == 400
    assert refused.json["message"] == "Scopes 'fly', 'swim' do not exist"
