"""Tokens, services, the proxy API, groups and named servers, through the running system."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest
import requests

from tests.helpers import wait_for
from tests.integration.conftest import Hub, login
from tests.spawners import FAIL_STATUS

pytestmark = pytest.mark.integration

SERVICES = [
    {"name": "culler", "api_token": "culler-secret-token", "admin": True},
    {
        "name": "viewer",
        "api_token": "viewer-secret-token",
        "scopes": ["read:users", "read:services!service=viewer"],
        "url": "http://127.0.0.1:10101",
    },
]
SETTINGS = {
    "services": SERVICES,
    "allow_named_servers": True,
    "named_server_limit_per_user": 2,
    "spawner": "tests.spawners:FaultSpawner",
    "slow_spawn_timeout": 3,
}
TOKEN_KEYS = {
    "id",
    "kind",
    "user",
    "roles",
    "scopes",
    "note",
    "created",
    "expires_at",
    "last_activity",
    "session_id",
    "oauth_client",
}
ISO_Z = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z")


@pytest.fixture(scope="module")
def hub(hub_factory: Callable[..., Hub]) -> Hub:
    """A hub with services and named servers (limit 2) configured."""
    return hub_factory(**SETTINGS)


@pytest.fixture(scope="module")
def plain_hub(hub_factory: Callable[..., Hub]) -> Hub:
    """A hub with default settings (named servers off)."""
    return hub_factory()


def _user(hub: Hub, name: str) -> str:
    """Create a user (if new) and return a token of theirs."""
    hub.api("POST", f"/users/{name}")
    return hub.token(name)


def _tokens(hub: Hub, name: str) -> list[dict[str, Any]]:
    response = hub.api("GET", f"/users/{name}/tokens")
    assert response.status_code == 200, response.text
    return response.json()["api_tokens"]


def _unused(tokens: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tokens without when each was last used (a request with one records that)."""
    return [{k: v for k, v in t.items() if k != "last_activity"} for t in tokens]


def _check_error(response: requests.Response, status: int, fragment: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == status
    assert fragment in body["message"], body["message"]


# -- tokens -------------------------------------------------------------------


def test_token_lifecycle(hub: Hub) -> None:
    alice = _user(hub, "alice")
    created = hub.api(
        "POST",
        "/users/alice/tokens",
        token=alice,
        json={"note": "for my notebook", "expires_in": 3600, "scopes": ["read:users!user"]},
    )
    assert created.status_code == 201, created.text
    model = created.json()
    new_token = model.pop("token")
    assert set(model) == TOKEN_KEYS
    assert re.fullmatch(r"a\d+", model["id"])
    assert model["kind"] == "api_token" and model["user"] == "alice"
    assert model["note"] == "for my notebook"
    assert model["session_id"] is None and model["oauth_client"] == "JupyterHub"
    assert ISO_Z.fullmatch(model["created"]) and ISO_Z.fullmatch(model["expires_at"])
    assert "read:users!user=alice" in model["scopes"]
    assert "servers!user=alice" not in model["scopes"]

    listed = {t["id"]: t for t in _tokens(hub, "alice")}
    assert listed[model["id"]] == model  # the token itself is shown only once
    one = hub.api("GET", f"/users/alice/tokens/{model['id']}", token=alice)
    assert one.status_code == 200 and one.json() == model

    # The new token can do what it was given, and nothing more.
    assert hub.api("GET", "/users/alice", token=new_token).status_code == 200
    assert hub.api("POST", "/users/alice/server", token=new_token).status_code == 403
    assert hub.api("GET", "/users/alice/tokens", token=new_token).status_code == 403

    assert hub.api("DELETE", f"/users/alice/tokens/{model['id']}", token=alice).status_code == 204
    gone = hub.api("GET", f"/users/alice/tokens/{model['id']}", token=alice)
    _check_error(gone, 404, f"No such token {model['id']} for user alice")
    assert hub.api("GET", "/user", token=new_token).status_code == 403


def test_a_token_without_scopes_carries_its_owners_scopes(hub: Hub) -> None:
    bea = _user(hub, "bea")
    created = hub.api("POST", "/users/bea/tokens", token=bea)
    assert created.status_code == 201, created.text
    assert created.json()["note"] == "Requested via api"
    own = hub.api("GET", "/user", token=bea).json()["scopes"]
    assert created.json()["scopes"] == own
    assert "servers!user=bea" in own and "tokens!user=bea" in own
    whoami = hub.api("GET", "/user", token=created.json()["token"])
    assert whoami.status_code == 200 and whoami.json()["name"] == "bea"


def test_an_admin_can_create_a_token_for_a_user(hub: Hub) -> None:
    _user(hub, "cleo")
    created = hub.api("POST", "/users/cleo/tokens", json={"scopes": ["read:users!user=cleo"]})
    assert created.status_code == 201, created.text
    assert created.json()["user"] == "cleo"
    assert created.json()["note"] == "Requested via api by user admin"
    assert hub.api("GET", "/user", token=created.json()["token"]).json()["name"] == "cleo"


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"scopes": ["admin:users"]}, 400, "Not assigning requested scopes admin:users"),
        ({"scopes": ["read:users!user=someone-else"]}, 400, "not held by user dora"),
        ({"scopes": ["no-such-scope"]}, 400, "Scope 'no-such-scope' does not exist"),
        ({"scopes": ["servers!planet=mars"]}, 400, "Scope filter '!planet=mars'"),
        ({"scopes": "read:users"}, 400, "must be null or a list of strings"),
        ({"roles": ["superuser"]}, 400, "Role 'superuser' does not exist"),
        ({"expires_in": "soon"}, 400, "expires_in"),
        ({"expires_in": -5}, 400, "expires_in"),
        ({"expires_in": 10**15}, 400, "must not exceed"),
        ({"note": 42}, 400, "note must be a string"),
        (["not", "a", "dict"], 400, "Body must be a JSON dict or empty"),
    ],
)
def test_bad_token_requests_store_nothing(
    hub: Hub, body: object, status: int, fragment: str
) -> None:
    dora = _user(hub, "dora")
    before = _unused(_tokens(hub, "dora"))
    response = hub.api("POST", "/users/dora/tokens", token=dora, json=body)
    _check_error(response, status, fragment)
    assert _unused(_tokens(hub, "dora")) == before


def test_a_narrow_token_cannot_mint_a_broader_one(hub: Hub) -> None:
    _user(hub, "emil")
    narrow = hub.api("POST", "/users/emil/tokens", json={"scopes": ["tokens!user=emil"]}).json()[
        "token"
    ]
    before = _unused(_tokens(hub, "emil"))
    for body in ({}, {"scopes": ["servers!user"]}):
        response = hub.api("POST", "/users/emil/tokens", token=narrow, json=body)
        _check_error(response, 403, "may not grant scopes it does not hold")
    assert _unused(_tokens(hub, "emil")) == before
    same = hub.api(
        "POST", "/users/emil/tokens", token=narrow, json={"scopes": ["read:tokens!user"]}
    )
    assert same.status_code == 201, same.text


def test_a_user_cannot_touch_another_users_tokens(hub: Hub) -> None:
    fay, gus = _user(hub, "fay"), _user(hub, "gus")
    fay_token_id = _tokens(hub, "fay")[0]["id"]
    for method, path in [
        ("GET", "/users/fay/tokens"),
        ("POST", "/users/fay/tokens"),
        ("GET", f"/users/fay/tokens/{fay_token_id}"),
        ("DELETE", f"/users/fay/tokens/{fay_token_id}"),
    ]:
        _check_error(hub.api(method, path, token=gus), 403, "requires [")
    # A token id of someone else is not found under one's own name either.
    _check_error(hub.api("GET", f"/users/gus/tokens/{fay_token_id}", token=gus), 404, "No such")
    _check_error(hub.api("DELETE", f"/users/gus/tokens/{fay_token_id}", token=gus), 404, "No such")
    assert hub.api("GET", "/user", token=fay).json()["name"] == "fay"


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        ("/users/nobody-here/tokens", "No such user: nobody-here"),
        ("/users/admin/tokens/a999999", "No such token a999999"),
        ("/users/admin/tokens/b1", "No such token b1"),
        ("/users/admin/tokens/a-1", "No such token a-1"),
    ],
)
def test_unknown_tokens_and_users_are_404(hub: Hub, path: str, fragment: str) -> None:
    _check_error(hub.api("GET", path), 404, fragment)


def test_an_expired_token_is_refused_and_not_listed(hub: Hub) -> None:
    hana = _user(hub, "hana")
    created = hub.api("POST", "/users/hana/tokens", token=hana, json={"expires_in": 1}).json()
    assert hub.api("GET", "/user", token=created["token"]).status_code == 200
    wait_for(lambda: hub.api("GET", "/user", token=created["token"]).status_code == 403, 10)
    assert created["id"] not in {t["id"] for t in _tokens(hub, "hana")}
    assert hub.api("GET", f"/users/hana/tokens/{created['id']}").status_code == 404


DEPRECATED_LOOKUP = (
    "/authorizations/token/:token endpoint is deprecated in JupyterHub 2.0. Use /api/user"
)


def test_a_token_is_looked_up_as_jupyterhub_6_does_deprecated(hub: Hub) -> None:
    """GET /authorizations/token/<t> (jhub-client's whoami): the owner's model, as far as
    the caller may read it, plus what identifies the owner; a warning in the log."""
    kit = _user(hub, "kit")
    hub.api("POST", "/users/lou")
    lou = hub.token("lou")
    own = hub.api("GET", f"/authorizations/token/{kit}", token=kit)
    assert own.status_code == 200, own.text
    assert own.json() == hub.api("GET", "/users/kit", token=kit).json()
    # Another user's token: only what identifies its owner (JupyterHub's identify scopes).
    other = hub.api("GET", f"/authorizations/token/{lou}", token=kit)
    assert other.status_code == 200, other.text
    assert other.json() == {"kind": "user", "name": "lou", "admin": False, "groups": []}
    service = hub.api("GET", "/authorizations/token/culler-secret-token", token=kit)
    assert service.json() == {"kind": "service", "name": "culler", "admin": True}
    # A service holding admin:services and read:users sees whole models.
    as_culler = hub.api(
        "GET", "/authorizations/token/culler-secret-token", token="culler-secret-token"
    )
    assert as_culler.json()["command"] == [] and as_culler.json()["roles"] == ["admin"]
    full = hub.api("GET", f"/authorizations/token/{lou}", token="culler-secret-token").json()
    assert full["name"] == "lou" and "created" in full and "servers" in full
    assert DEPRECATED_LOOKUP in hub.log()
    # Unknown, expired or revoked tokens: 404; no token, or the login cookie alone: 403.
    _check_error(hub.api("GET", "/authorizations/token/0123456789abcdef", token=kit), 404, "")
    anonymous = requests.get(f"{hub.public_url}/hub/api/authorizations/token/{kit}", timeout=10)
    assert anonymous.status_code == 403
    browser = login(hub, "kit")
    by_cookie = browser.get(f"{hub.public_url}/hub/api/authorizations/token/{kit}", timeout=10)
    assert by_cookie.status_code == 403, by_cookie.text
    token_id = hub.api("GET", "/user", token=lou).json()["token_id"]
    hub.api("DELETE", f"/users/lou/tokens/{token_id}")
    assert hub.api("GET", f"/authorizations/token/{lou}", token=kit).status_code == 404


def test_the_removed_token_creation_says_what_to_use_instead(hub: Hub) -> None:
    new = hub.api("POST", "/authorizations/token")
    _check_error(
        new,
        404,
        "Deprecated endpoint /hub/api/authorizations/token is removed in JupyterHub 2.0."
        " Use /hub/api/users/:user/tokens instead.",
    )


# -- scopes through the system ------------------------------------------------


def test_a_read_users_token_lists_everyone_but_cannot_change_anything(hub: Hub) -> None:
    _user(hub, "ivy")
    reader = hub.api("POST", "/users/admin/tokens", json={"scopes": ["read:users"]}).json()
    names = {u["name"] for u in hub.api("GET", "/users", token=reader["token"]).json()}
    assert {"admin", "ivy"} <= names
    assert hub.api("GET", "/users/ivy", token=reader["token"]).status_code == 200
    for method, path in [("POST", "/users/someone"), ("POST", "/users/ivy/server")]:
        assert hub.api(method, path, token=reader["token"]).status_code == 403
    # A user without read:users sees only themself.
    ivy = hub.token("ivy")
    assert [u["name"] for u in hub.api("GET", "/users", token=ivy).json()] == ["ivy"]


def test_only_admins_grant_admin(hub: Hub) -> None:
    maker = hub.api("POST", "/users/admin/tokens", json={"scopes": ["admin:users"]}).json()
    refused = hub.api("POST", "/users/jack", token=maker["token"], json={"admin": True})
    _check_error(refused, 403, "Only admins can grant admin permissions")
    assert hub.api("GET", "/users/jack").status_code == 404
    assert hub.api("POST", "/users/jack", token=maker["token"]).status_code == 201


# -- services -----------------------------------------------------------------


def test_services_are_listed_with_jupyterhubs_model(hub: Hub) -> None:
    response = hub.api("GET", "/services")
    assert response.status_code == 200, response.text
    services = response.json()
    assert sorted(services) == ["culler", "viewer"]
    assert services["culler"] == {
        "kind": "service",
        "name": "culler",
        "admin": True,
        "roles": ["admin"],
        "url": "",
        "prefix": "",
        "command": [],
        "pid": 0,
        "info": {},
        "display": True,
    }
    assert services["viewer"]["admin"] is False
    assert services["viewer"]["url"] == "http://127.0.0.1:10101"
    one = hub.api("GET", "/services/viewer")
    assert one.status_code == 200 and one.json() == services["viewer"]
    _check_error(hub.api("GET", "/services/nope"), 404, "No such service: nope")


def test_service_tokens_have_their_configured_scopes(hub: Hub) -> None:
    viewer, culler = "viewer-secret-token", "culler-secret-token"
    assert list(hub.api("GET", "/services", token=viewer).json()) == ["viewer"]
    assert hub.api("GET", "/services/culler", token=viewer).status_code == 403
    assert hub.api("GET", "/users", token=viewer).status_code == 200
    assert hub.api("POST", "/users/kai", token=viewer).status_code == 403
    assert hub.api("GET", "/proxy", token=viewer).status_code == 403
    whoami = hub.api("GET", "/user", token=viewer).json()
    assert whoami["kind"] == "service" and "read:users" in whoami["scopes"]
    # An admin service holds the admin role.
    assert hub.api("GET", "/proxy", token=culler).status_code == 200
    assert hub.api("POST", "/users/kai", token=culler).status_code == 201


def test_users_cannot_read_services(hub: Hub) -> None:
    _check_error(hub.api("GET", "/services", token=_user(hub, "lou")), 403, "list:services")


# -- proxy --------------------------------------------------------------------


def test_proxy_routing_table(hub: Hub) -> None:
    _user(hub, "mona")
    assert hub.api("POST", "/users/mona/server").status_code == 201
    response = hub.api("GET", "/proxy")
    assert response.status_code == 200, response.text
    routes = response.json()
    # The proxy reaches the hub over its socket (only there is X-Forwarded-For believed).
    assert routes["/"]["target"] == "http+unix://" + quote(str(hub.data_dir / "hub.sock"), safe="")
    mona = routes["/user/mona/"]
    assert mona["routespec"] == "/user/mona/"
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", mona["target"])
    assert mona["data"]["user"] == "mona" and mona["data"]["server_name"] == ""
    assert "jupyterhub" not in mona["data"]
    paged = hub.api(
        "GET", "/proxy?limit=1", headers={"Accept": "application/jupyterhub-pagination+json"}
    ).json()
    assert list(paged["items"]) == ["/"]
    assert paged["_pagination"]["total"] == len(routes)
    assert paged["_pagination"]["next"]["offset"] == 1
    second = hub.api("GET", "/proxy?offset=1&limit=1").json()
    assert list(second) == [sorted(routes)[1]]
    hub.api("DELETE", "/users/mona/server")


def test_post_proxy_restores_a_lost_route_at_once(hub: Hub) -> None:
    _user(hub, "nico")
    assert hub.api("POST", "/users/nico/server").status_code == 201
    chp_token = (hub.data_dir / "proxy_auth_token").read_text().strip()
    requests.delete(
        f"{hub.proxy_api_url}/api/routes/user/nico",
        headers={"Authorization": f"token {chp_token}"},
        timeout=10,
    ).raise_for_status()
    assert hub.api("POST", "/proxy").status_code == 200
    assert "/user/nico" in hub.routes()
    hub.api("DELETE", "/users/nico/server")


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"api_url": "not a url"},
        {"api_url": "ftp://127.0.0.1:1"},
        {"api_url": "http://127.0.0.1:notaport"},
        {"auth_token": 5},
        {"auth_token": ""},
        {"ip": "127.0.0.1"},
        ["api_url"],
    ],
)
def test_patch_proxy_refuses_a_bad_body_and_changes_nothing(hub: Hub, body: object) -> None:
    response = hub.api("PATCH", "/proxy", json=body)
    assert response.status_code == 400, response.text
    assert hub.api("GET", "/proxy").status_code == 200


def test_patch_proxy_repoints_the_client(hub: Hub) -> None:
    chp_token = (hub.data_dir / "proxy_auth_token").read_text().strip()
    wrong = hub.api("PATCH", "/proxy", json={"auth_token": "not-the-proxy-token"})
    _check_error(wrong, 502, "syncing its routes failed")
    assert hub.api("GET", "/proxy").status_code == 502
    right = hub.api("PATCH", "/proxy", json={"api_url": hub.proxy_api_url, "auth_token": chp_token})
    assert right.status_code == 200, right.text
    assert hub.api("GET", "/proxy").status_code == 200


def test_proxy_api_needs_the_proxy_scope(hub: Hub) -> None:
    token = _user(hub, "otto")
    for method in ("GET", "POST", "PATCH"):
        _check_error(hub.api(method, "/proxy", token=token, json={}), 403, "[proxy]")


# -- groups -------------------------------------------------------------------


def _group(hub: Hub, name: str) -> dict[str, Any]:
    response = hub.api("GET", f"/groups/{name}")
    assert response.status_code == 200, response.text
    return response.json()


def test_group_lifecycle(hub: Hub) -> None:
    for name in ("pia", "quinn"):
        _user(hub, name)
    created = hub.api("POST", "/groups", json={"groups": ["physics", "chem"], "users": ["pia"]})
    assert created.status_code == 201, created.text
    assert created.json() == [
        {"kind": "group", "name": n, "roles": [], "users": ["pia"], "properties": {}}
        for n in ("physics", "chem")
    ]
    assert hub.api("GET", "/users/pia").json()["groups"] == ["chem", "physics"]
    assert "physics" in {g["name"] for g in hub.api("GET", "/groups").json()}

    added = hub.api("POST", "/groups/physics/users", json={"users": ["quinn", "pia"]})
    assert added.status_code == 200 and added.json()["users"] == ["pia", "quinn"]
    removed = hub.api("DELETE", "/groups/physics/users", json={"users": ["pia"]})
    assert removed.status_code == 200 and removed.json()["users"] == ["quinn"]

    props = hub.api("PUT", "/groups/physics/properties", json={"lab": "B12", "size": 3})
    assert props.status_code == 200 and props.json()["properties"] == {"lab": "B12", "size": 3}
    assert hub.api("GET", "/groups/physics/properties").json() == {"lab": "B12", "size": 3}

    assert hub.api("DELETE", "/groups/physics").status_code == 204
    _check_error(hub.api("GET", "/groups/physics"), 404, "No such group: physics")
    assert hub.api("GET", "/users/quinn").json()["groups"] == []
    # Deleting a user takes them out of their groups.
    assert hub.api("DELETE", "/users/pia").status_code == 204
    assert _group(hub, "chem")["users"] == []


def test_one_group_by_name_and_conflicts(hub: Hub) -> None:
    _user(hub, "rex")
    made = hub.api("POST", "/groups/bio", json={"users": ["rex"]})
    assert made.status_code == 201 and made.json()["users"] == ["rex"]
    _check_error(hub.api("POST", "/groups/bio"), 409, "Group bio already exists")
    # All or nothing: one existing name creates none of them.
    conflict = hub.api("POST", "/groups", json={"groups": ["geo", "bio"]})
    _check_error(conflict, 409, "Group bio already exists")
    assert hub.api("GET", "/groups/geo").status_code == 404


@pytest.mark.parametrize(
    ("method", "path", "body", "fragment"),
    [
        ("POST", "/groups", {}, "Must specify at least one group"),
        ("POST", "/groups", {"groups": "math"}, "groups must be a list"),
        ("POST", "/groups", {"groups": ["has space"]}, "Invalid group name"),
        ("POST", "/groups", {"groups": ["math"], "users": ["ghost"]}, "No such user: ghost"),
        ("POST", "/groups/math", {"users": ["ghost"]}, "No such user: ghost"),
        ("POST", "/groups/math", {"colour": "red"}, 'Send nothing, or {"users"'),
        ("POST", "/groups/sam-team/users", {"users": ["sam", "ghost"]}, "No such user: ghost"),
        ("POST", "/groups/sam-team/users", {}, 'Send {"users"'),
        ("DELETE", "/groups/sam-team/users", {"users": "sam"}, "users must be a list"),
        ("PUT", "/groups/sam-team/properties", ["a"], "Properties must be a JSON object"),
    ],
)
def test_bad_group_requests_are_400_and_store_nothing(
    hub: Hub, method: str, path: str, body: object, fragment: str
) -> None:
    _user(hub, "sam")
    hub.api("POST", "/groups/sam-team", json={"users": ["sam"]})
    _check_error(hub.api(method, path, json=body), 400, fragment)
    assert hub.api("GET", "/groups/math").status_code == 404
    assert _group(hub, "sam-team")["users"] == ["sam"]
    assert _group(hub, "sam-team")["properties"] == {}


def test_groups_need_group_scopes(hub: Hub) -> None:
    tess = _user(hub, "tess")
    hub.api("POST", "/groups/tess-team", json={"users": ["tess"]})
    for method, path in [
        ("GET", "/groups"),
        ("POST", "/groups/tess-own"),
        ("GET", "/groups/tess-team"),
        ("POST", "/groups/tess-team/users"),
        ("PUT", "/groups/tess-team/properties"),
        ("DELETE", "/groups/tess-team"),
    ]:
        assert hub.api(method, path, token=tess, json={"users": ["tess"]}).status_code == 403
    assert _group(hub, "tess-team")["users"] == ["tess"]
    # A token narrowed to one group sees only that group.
    one = hub.api("POST", "/users/admin/tokens", json={"scopes": ["groups!group=tess-team"]})
    narrow = one.json()["token"]
    assert [g["name"] for g in hub.api("GET", "/groups", token=narrow).json()] == ["tess-team"]
    assert hub.api("GET", "/groups/bio", token=narrow).status_code == 403
    put = hub.api("PUT", "/groups/tess-team/properties", token=narrow, json={"a": 1})
    assert put.status_code == 200


def test_groups_are_paginated(hub: Hub) -> None:
    hub.api("POST", "/groups", json={"groups": ["page-a", "page-b", "page-c"]})
    everything = [g["name"] for g in hub.api("GET", "/groups").json()]
    page = hub.api(
        "GET",
        "/groups?offset=1&limit=2",
        headers={"Accept": "application/jupyterhub-pagination+json"},
    ).json()
    assert [g["name"] for g in page["items"]] == everything[1:3]
    assert page["_pagination"]["total"] == len(everything)
    _check_error(hub.api("GET", "/groups?limit=x"), 400, "limit must be an integer")


# -- named servers ------------------------------------------------------------


def _servers(hub: Hub, name: str) -> dict[str, Any]:
    return hub.api("GET", f"/users/{name}").json()["servers"]


def test_named_servers_start_reach_stop_and_remove(hub: Hub) -> None:
    uma = _user(hub, "uma")
    started = hub.api("POST", "/users/uma/servers/lab", token=uma)
    assert started.status_code == 201, started.text
    lab = _servers(hub, "uma")["lab"]
    assert lab["ready"] is True and lab["url"] == "/user/uma/lab/"
    assert lab["progress_url"] == "/hub/api/users/uma/servers/lab/progress"
    assert "/user/uma/lab" in hub.routes()
    status = hub.get("/user/uma/lab/api/status", headers={"Authorization": f"token {uma}"})
    assert status.status_code == 200, status.text

    assert hub.api("POST", "/users/uma/servers/lab", token=uma).status_code == 400
    assert hub.api("DELETE", "/users/uma/servers/lab", token=uma).status_code == 204
    assert "lab" not in _servers(hub, "uma")
    assert "/user/uma/lab" not in hub.routes()
    # Stopped, not removed: it still counts towards the limit.
    assert hub.api("POST", "/users/uma/servers/two", token=uma).status_code == 201
    _check_error(
        hub.api("POST", "/users/uma/servers/three", token=uma), 400, "maximum of 2 named servers"
    )
    removed = hub.api("DELETE", "/users/uma/servers/lab", token=uma, json={"remove": True})
    assert removed.status_code == 204
    _check_error(hub.api("DELETE", "/users/uma/servers/lab", token=uma), 404, "no server named")
    assert hub.api("POST", "/users/uma/servers/three", token=uma).status_code == 201
    # Removing a running server stops it first.
    running = hub.api("DELETE", "/users/uma/servers/two", token=uma, json={"remove": True})
    assert running.status_code == 204
    assert set(_servers(hub, "uma")) == {"three"}
    hub.api("DELETE", "/users/uma/servers/three", token=uma)


def test_named_server_progress_reuses_the_event_stream(hub: Hub) -> None:
    # The FaultSpawner makes slow-* users' servers take 5 s, reporting progress.
    token = _user(hub, "slow-vera")
    assert hub.api("POST", "/users/slow-vera/servers/nb", token=token).status_code == 202
    events = hub.progress_events("/users/slow-vera/servers/nb/progress", token=token)
    assert events[0] == {"progress": 0, "message": "Server requested"}
    assert any(e["message"].startswith("Injected slow step") for e in events)
    assert events[-1] == {
        "progress": 100,
        "ready": True,
        "message": "Server ready at /user/slow-vera/nb/",
        "url": "/user/slow-vera/nb/",
    }
    _check_error(
        hub.api("GET", "/users/slow-vera/servers/nope/progress"), 404, "no server named 'nope'"
    )
    hub.api("DELETE", "/users/slow-vera/servers/nb")


@pytest.fixture(scope="module")
def failed_servers(hub: Hub) -> str:
    """A user whose default server and two named ones ("ok", "x") failed to start: three
    server rows with a kept failure, no processes (the FaultSpawner fails fail-* at once)."""
    name = "fail-walt"
    hub.api("POST", f"/users/{name}")
    for server in ("", "ok", "x"):
        response = hub.api("POST", f"/users/{name}/servers/{server}")
        assert response.status_code == FAIL_STATUS, response.text
    return name


def _server_rows(hub: Hub, name: str) -> list[tuple[Any, ...]]:
    """Every column of every server row of a user, stopped and failed ones too."""
    return hub.query(
        "SELECT servers.* FROM servers JOIN users ON users.id = servers.user_id"
        " WHERE users.name = ? ORDER BY servers.name",
        name,
    )


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "fragment"),
    [
        ("POST", "/users/fail-walt/servers/.hidden", None, 400, "Invalid server name"),
        ("POST", "/users/fail-walt/servers/" + "x" * 256, None, 400, "Invalid server name"),
        ("POST", "/users/fail-walt/servers/a%20b", None, 400, "Invalid server name"),
        ("POST", "/users/fail-walt/servers/ok", ["not", "options"], 400, "must be a JSON object"),
        ("POST", "/users/fail-walt/servers/", "options", 400, "must be a JSON object"),
        ("DELETE", "/users/fail-walt/servers/never-made", None, 404, "no server named 'never-"),
        ("DELETE", "/users/fail-walt/servers/", {"remove": True}, 400, "Cannot delete the default"),
        ("DELETE", "/users/fail-walt/servers/x", {"remove": "yes"}, 400, '{"remove": true}'),
        ("POST", "/users/nobody-here/servers/lab", None, 404, "No such user: nobody-here"),
    ],
)
def test_bad_named_server_requests(
    hub: Hub, failed_servers: str, method: str, path: str, body: object, status: int, fragment: str
) -> None:
    """Refused, and no server row is created, changed or removed (a failure is not cleared)."""
    rows, users = _server_rows(hub, failed_servers), hub.query("SELECT name FROM users")
    assert len(rows) == 3
    _check_error(hub.api(method, path, json=body), status, fragment)
    assert _server_rows(hub, failed_servers) == rows
    assert hub.query("SELECT name FROM users") == users


def test_a_user_cannot_touch_another_users_named_servers(hub: Hub) -> None:
    xena, yuri = _user(hub, "xena"), _user(hub, "yuri")
    assert hub.api("POST", "/users/xena/servers/mine", token=xena).status_code == 201
    for method, path in [
        ("POST", "/users/xena/servers/yours"),
        ("DELETE", "/users/xena/servers/mine"),
        ("GET", "/users/xena/servers/mine/progress"),
    ]:
        _check_error(hub.api(method, path, token=yuri), 403, "on server xena/")
    assert _servers(hub, "xena")["mine"]["ready"] is True
    hub.api("DELETE", "/users/xena/servers/mine", json={"remove": True})


def test_named_servers_are_off_by_default(plain_hub: Hub) -> None:
    plain_hub.api("POST", "/users/zoe")
    for method in ("POST", "DELETE"):
        response = plain_hub.api(method, "/users/zoe/servers/lab")
        _check_error(response, 400, "Named servers are not enabled.")
    # The empty name is the default server, which needs no setting.
    assert plain_hub.api("POST", "/users/zoe/servers/").status_code == 201
    wait_for(lambda: plain_hub.api("GET", "/users/zoe").json()["server"] == "/user/zoe/")
    assert plain_hub.api("DELETE", "/users/zoe/servers/").status_code == 204


# -- JupyterHub 6: start:servers, the scopes a token shows ------------------------


def test_start_servers_starts_but_does_not_stop(hub: Hub) -> None:
    """JupyterHub 6's start:servers (a subscope of servers): start, not stop."""
    _user(hub, "sam")
    starter = hub.api(
        "POST", "/users/admin/tokens", json={"scopes": ["start:servers!user=sam"]}
    ).json()
    assert "token" in starter, starter
    started = hub.api("POST", "/users/sam/server", token=starter["token"])
    assert started.status_code in (201, 202), started.text
    _check_error(hub.api("DELETE", "/users/sam/server", token=starter["token"]), 403, "")
    _check_error(hub.api("POST", "/users/tom/server", token=starter["token"]), 403, "")
    stopper = hub.api("POST", "/users/admin/tokens", json={"scopes": ["delete:servers"]}).json()
    assert hub.api("DELETE", "/users/sam/server", token=stopper["token"]).status_code in (202, 204)
    _check_error(hub.api("POST", "/users/sam/server", token=stopper["token"]), 403, "")


# What JupyterHub 6.1.1 answers for a user's token (GET /hub/api/user, the token list).
OWN_SCOPES = [
    "access:servers!user={}",
    "delete:servers!user={}",
    "read:servers!user={}",
    "read:shares!user={}",
    "read:tokens!user={}",
    "read:users!user={}",
    "read:users:activity!user={}",
    "read:users:groups!user={}",
    "read:users:name!user={}",
    "read:users:shares!user={}",
    "servers!user={}",
    "start:servers!user={}",
    "tokens!user={}",
    "users:activity!user={}",
    "users:shares!user={}",
]


def test_tokens_show_the_scopes_jupyterhub_shows(hub: Hub) -> None:
    """No internal names ((no_scope), identify), and for an admin no !user=<self> copies
    of what it holds unfiltered."""
    ulla = _user(hub, "ulla")
    expected = [scope.format("ulla") for scope in OWN_SCOPES]
    assert hub.api("GET", "/user", token=ulla).json()["scopes"] == expected
    assert [sorted(t["scopes"]) for t in _tokens(hub, "ulla")] == [expected]
    admin = hub.api("GET", "/user").json()["scopes"]
    assert not [s for s in admin if "!" in s or s in ("(no_scope)", "identify")], admin
    assert {"admin:users", "start:servers", "read:users:name", "shutdown"} <= set(admin)
    service = hub.api("GET", "/user", token="viewer-secret-token").json()["scopes"]
    assert service == [
        "read:services!service=viewer",
        "read:services:name!service=viewer",
        "read:users",
        "read:users:activity",
        "read:users:groups",
        "read:users:name",
    ]
    # Every token may read who its owner is: JupyterHub 6.1 adds those scopes to each.
    narrow = hub.api(
        "POST", "/users/ulla/tokens", token=ulla, json={"scopes": ["read:users:name!user"]}
    ).json()
    identify = ["read:users:groups!user=ulla", "read:users:name!user=ulla"]
    assert narrow["scopes"] == identify
    assert hub.api("GET", "/user", token=narrow["token"]).json()["scopes"] == identify
    groups = hub.api("GET", "/users/ulla", token=narrow["token"]).json()
    assert groups == {
        "kind": "user",
        "name": "ulla",
        "admin": False,
        "groups": [],
        "user_info": None,
    }


def test_jupyterhub_6_server_calls_get_put_patch(hub: Hub) -> None:
    """GET one server, PUT a named server without starting it, PATCH a stopped one
    (rename, display_name, user_options), as JupyterHub 6.1's rest-api.yml describes."""
    pia = _user(hub, "pia")
    url = "/users/pia/servers/nb"
    created = hub.api(
        "PUT", url, token=pia, json={"display_name": "My notebook", "user_options": {"size": "s"}}
    )
    assert created.status_code == 201, created.text
    model = created.json()
    assert (model["name"], model["display_name"]) == ("nb", "My notebook")
    assert model["stopped"] is True and model["ready"] is False and model["pending"] is None
    assert model["user_options"] == {"size": "s"} and "state" not in model
    assert hub.api("GET", url, token=pia).json() == model
    assert "state" in hub.api("GET", url).json()  # the admin holds admin:server_state
    _check_error(hub.api("PUT", url, token=pia), 409, "already has server nb")
    _check_error(hub.api("PUT", "/users/pia/servers/", token=pia), 409, "default server")
    _check_error(hub.api("GET", "/users/pia/servers/none", token=pia), 404, "no server named")
    _check_error(hub.api("PUT", "/users/pia/servers/nb", token=_user(hub, "quin")), 403, "")
    stopped = hub.api("GET", "/users/pia?include_stopped_servers=1", token=pia).json()
    assert stopped["servers"]["nb"]["display_name"] == "My notebook"
    assert stopped["user_info"] is None

    # POST without options starts it with those it was created with (JupyterHub 6).
    assert hub.api("POST", url, token=pia).status_code == 201
    running = hub.api("GET", url, token=pia).json()
    assert running["ready"] is True and running["user_options"] == {"size": "s"}
    _check_error(hub.api("PATCH", url, token=pia, json={"name": "nb2"}), 400, "stop it before")
    assert hub.api("DELETE", url, token=pia).status_code == 204

    renamed = hub.api("PATCH", url, token=pia, json={"name": "nb2"})
    assert renamed.status_code == 200, renamed.text
    assert (renamed.json()["name"], renamed.json()["display_name"]) == ("nb2", "nb2")
    assert renamed.json()["url"] == "/user/pia/nb2/"
    assert hub.api("GET", url, token=pia).status_code == 404
    edited = hub.api(
        "PATCH",
        "/users/pia/servers/nb2",
        token=pia,
        json={"display_name": "Renamed", "user_options": {"size": "m"}},
    ).json()
    assert (edited["display_name"], edited["user_options"]) == ("Renamed", {"size": "m"})
    assert hub.api("POST", "/users/pia/servers/nb2", token=pia).status_code == 201
    assert hub.api("GET", "/users/pia/servers/nb2", token=pia).json()["ready"] is True
    assert hub.api("DELETE", "/users/pia/servers/nb2", token=pia).status_code == 204

    # A second named server (the limit is 2), then a rename onto it is a conflict.
    assert hub.api("PUT", "/users/pia/servers/other", token=pia).status_code == 201
    _check_error(
        hub.api("PATCH", "/users/pia/servers/nb2", token=pia, json={"name": "other"}),
        409,
        "already has server 'other'",
    )
    _check_error(hub.api("PUT", "/users/pia/servers/third", token=pia), 400, "maximum of 2")


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({}, "at least one field"),
        ({"colour": "red"}, "Unexpected fields: colour"),
        ({"name": "Not A Name!"}, "server name"),
        ({"name": 5}, "name must be a string"),
        ({"display_name": ["x"]}, "display_name must be a string"),
        ({"display_name": "line\nbreak"}, "printable"),
        ({"display_name": "x" * 256}, "at most 255"),
        ({"user_options": ["x"]}, "user_options must be an object"),
        ([], "at least one field"),
    ],
)
def test_bad_server_patches_are_400(hub: Hub, body: object, fragment: str) -> None:
    rex = _user(hub, "rex")
    hub.api("PUT", "/users/rex/servers/box", token=rex)
    _check_error(hub.api("PATCH", "/users/rex/servers/box", token=rex, json=body), 400, fragment)


def test_bad_server_bodies_are_400(hub: Hub) -> None:
    sid = _user(hub, "sid")
    for method in ("PUT", "POST"):
        for body, fragment in [
            ({"display_name": 3}, "display_name must be a string"),
            ({"user_options": "big"}, "user_options must be an object or null"),
            (["a"], "Body must be a JSON object"),
        ]:
            response = hub.api(method, "/users/sid/servers/x", token=sid, json=body)
            _check_error(response, 400, fragment)
