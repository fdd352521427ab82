"""The REST API's input validation and status codes, through Flask's test client.

No processes and no CHP: nothing listens on the proxy API port, and every request
here is refused before a server would start or the proxy would be called. Each
table row is a request, the status it gets, and a part of its message; where a
request could have changed something, the test also checks that nothing did.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select
from werkzeug.test import TestResponse

from app.db import get_db
from app.models import Server, ServerState, User
from app.servers import get_servers
from app.users import get_users
from tests.helpers import server_rows, xsrf_token

NOBODY = "No such user: nobody"
NOT_AUTHORIZED = "Action is not authorized with current scopes; requires "
NO_CREDENTIALS = "Missing or invalid credentials"
NOW = "2024-05-01T12:00:00Z"

Api = Callable[..., TestResponse]


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    """A hub with named servers (two per user) and the users alice and bob."""
    app = make_app(allow_named_servers=True, named_server_limit_per_user=2)
    get_users(app).create_many(["alice", "bob"])
    return app


@pytest.fixture
def api(app: Flask, make_token: Callable[..., str]) -> Api:
    """api(method, path, body=None, token=<admin's>): a call of /hub/api<path>.

    body: bytes are sent as they are (as JSON), anything else but None as JSON.
    """
    client = app.test_client()
    admin = make_token(app, "admin", admin=True)

    def call(
        method: str, path: str, body: Any = None, *, token: str | None = admin
    ) -> TestResponse:
        headers = {"Authorization": f"token {token}"} if token else {}
        if isinstance(body, bytes):
            headers["Content-Type"] = "application/json"
            return client.open(f"/hub/api{path}", method=method, data=body, headers=headers)
        kwargs = {} if body is None else {"json": body}
        return client.open(f"/hub/api{path}", method=method, headers=headers, **kwargs)

    return call


def check_error(response: TestResponse, status: int, fragment: str) -> None:
    """The API's error shape: the status, and a message that says fragment."""
    assert response.status_code == status, response.text
    assert response.json is not None and response.json["status"] == status
    assert fragment in response.json["message"], response.json["message"]


def user_names(app: Flask) -> list[str]:
    return sorted(u.name for u in get_users(app).page()[0])


# -- users --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        (None, 400, 'Send {"usernames": ["name", ...], "admin": false}.'),
        (b"{not json", 400, "Request body must be valid JSON"),
        (["carol"], 400, 'Send {"usernames"'),
        ({"usernames": "carol"}, 400, 'Send {"usernames"'),
        ({"usernames": []}, 400, "No usernames given."),
        ({"usernames": ["no/slash"]}, 400, "Invalid username 'no/slash'"),
        ({"usernames": ["carol", "_under"]}, 400, "Invalid username '_under'"),
        ({"usernames": ["x" * 256]}, 400, "Invalid username"),
        ({"usernames": [7]}, 400, "A username must be a string."),
        ({"usernames": ["alice", " Bob "]}, 409, "All 2 users already exist"),
    ],
)
def test_create_users_refused(app: Flask, api: Api, body: Any, status: int, fragment: str) -> None:
    before = user_names(app)
    check_error(api("POST", "/users", body), status, fragment)
    assert user_names(app) == before  # all or nothing: no carol


@pytest.mark.parametrize(
    ("name", "body", "status", "fragment"),
    [
        ("alice", None, 409, "User alice already exists"),
        ("ALICE", None, 409, "User alice already exists"),
        ("_under", None, 400, "Invalid username '_under'"),
        ("carol", [1], 400, "Body must be a JSON object"),
        ("carol", b"{", 400, "Request body must be valid JSON"),
    ],
)
def test_create_one_user_refused(
    app: Flask, api: Api, name: str, body: Any, status: int, fragment: str
) -> None:
    before = user_names(app)
    check_error(api("POST", f"/users/{name}", body), status, fragment)
    assert user_names(app) == before


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"nme": "carol"}, 400, 'Send an object with any of "name", "admin", "groups"'),
        ([], 400, 'Send an object with any of "name"'),
        # No body is no change asked for: JupyterHub 6.1 and its rest-api.yml refuse it.
        (b"", 400, 'Send an object with any of "name"'),
        (b" \n", 400, 'Send an object with any of "name"'),
        (b"null", 400, 'Send an object with any of "name"'),
        ({"admin": "yes"}, 400, "user.admin must be a bool, not 'yes'"),
        ({"admin": 1}, 400, "user.admin must be a bool, not 1"),
        ({"groups": "team"}, 400, "user.groups must be a list"),
        ({"groups": [1]}, 400, "user.groups must be a list of group names"),
        ({"groups": ["nosuch", "other"]}, 400, "No such group: nosuch, other"),
        ({"auth_state": "x"}, 400, "user.auth_state must be an object or null, not 'x'"),
        ({"name": "Bad Name"}, 400, "Invalid username 'Bad Name'"),
        ({"name": 5}, 400, "user.name must be a str, not 5"),
        # JupyterHub answers a taken name with 400, not 409.
        ({"name": "bob"}, 400, "User bob already exists, username must be unique"),
        ({"name": "BOB", "admin": True}, 400, "User bob already exists"),
    ],
)
def test_update_user_refused(app: Flask, api: Api, body: Any, status: int, fragment: str) -> None:
    check_error(api("PATCH", "/users/alice", body), status, fragment)
    alice = api("GET", "/users/alice").json
    assert alice is not None and alice["admin"] is False  # unchanged, still called alice


def test_patch_sets_exactly_the_groups_sent(app: Flask, api: Api) -> None:
    api("POST", "/groups", {"groups": ["red", "blue", "green"]})
    api("POST", "/groups/green/users", {"users": ["alice"]})
    changed = api("PATCH", "/users/alice", {"groups": ["red", "blue"]})
    assert changed.status_code == 200, changed.text
    assert changed.json is not None and changed.json["groups"] == ["blue", "red"]
    assert api("GET", "/groups/green").json["users"] == []
    assert api("PATCH", "/users/alice", {"groups": []}).json["groups"] == []


def test_bad_user_list_sort_is_400_naming_it(api: Api) -> None:
    response = api("GET", "/users?sort=bogus")
    check_error(response, 400, "sort must be one of 'id', 'name', 'last_activity', 'server_ready'")
    assert "not 'bogus'" in response.json["message"]


def test_user_list_filters_sorts_and_shows_stopped_servers(app: Flask, api: Api) -> None:
    get_users(app).create_many(["alina", "malia", "zed"])
    # Ahead of the admin, whose token's use is activity too.
    soon = datetime.now(UTC) + timedelta(minutes=30)
    get_users(app).record_activity(get_users(app).get("zed").id, soon, {})
    names = lambda query: [u["name"] for u in api("GET", f"/users?{query}").json]  # noqa: E731
    assert names("name_filter=LI") == ["alice", "alina", "malia"]
    assert names("name_filter=%25") == []  # a literal %, not a wildcard
    assert names("sort=-name&name_filter=a") == ["zed", "malia", "alina", "alice", "admin"][1:]
    assert names("sort=name&limit=2") == ["admin", "alice"]
    # NULLs first ascending, last descending (JupyterHub's order).
    assert names("sort=-last_activity")[0] == "zed"
    assert names("sort=last_activity")[-1] == "zed"
    with get_db(app).write() as session:
        alice = session.scalar(select(User).where(User.name == "alice"))
        session.add(Server(user=alice, name="lab", state=ServerState.STOPPED))
    alice = lambda query: api("GET", f"/users?name_filter=alice&{query}").json[0]  # noqa: E731
    assert alice("")["servers"] == {}
    assert alice("include_stopped_servers=false")["servers"] == {}
    stopped = alice("include_stopped_servers")["servers"]
    assert stopped["lab"]["stopped"] is True and stopped["lab"]["ready"] is False
    one = api("GET", "/users/alice?include_stopped_servers=1").json
    assert list(one["servers"]) == ["lab"]


def test_user_list_sorts_users_with_a_ready_server_first(app: Flask, api: Api) -> None:
    get_users(app).create_many(["bea", "cy", "dee"])
    with get_db(app).write() as session:
        for name, state in (("dee", ServerState.RUNNING), ("bea", ServerState.STOPPED)):
            user = session.scalar(select(User).where(User.name == name))
            session.add(Server(user=user, name="", state=state, url="http://127.0.0.1:9"))
    names = lambda query: [u["name"] for u in api("GET", f"/users?{query}").json]  # noqa: E731
    assert names("sort=server_ready") == ["dee", "admin", "alice", "bea", "bob", "cy"]
    assert names("sort=-server_ready") == ["admin", "alice", "bea", "bob", "cy", "dee"]


def test_nobody_can_delete_themself(app: Flask, api: Api) -> None:
    check_error(api("DELETE", "/users/admin"), 400, "Cannot delete yourself!")
    assert "admin" in user_names(app)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/users/nobody", None),
        ("PATCH", "/users/nobody", {"admin": True}),
        ("DELETE", "/users/nobody", None),
        ("POST", "/users/nobody/server", None),
        ("DELETE", "/users/nobody/server", None),
        ("GET", "/users/nobody/server/progress", None),
        ("POST", "/users/nobody/servers/lab", None),
        ("DELETE", "/users/nobody/servers/lab", None),
        ("GET", "/users/nobody/servers/lab/progress", None),
        ("POST", "/users/nobody/activity", {"last_activity": NOW}),
        ("GET", "/users/nobody/tokens", None),
        ("POST", "/users/nobody/tokens", None),
        ("GET", "/users/nobody/tokens/a1", None),
        ("DELETE", "/users/nobody/tokens/a1", None),
    ],
)
def test_unknown_user_is_404_on_every_user_route(
    app: Flask, api: Api, method: str, path: str, body: Any
) -> None:
    check_error(api(method, path, body), 404, NOBODY)
    assert "nobody" not in user_names(app)


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ("limit=x", "limit must be an integer, got 'x'"),
        ("offset=-1", "offset must not be negative"),
        (f"offset={2**63}", "offset must be at most"),
    ],
)
def test_bad_pagination_is_400(api: Api, query: str, fragment: str) -> None:
    check_error(api("GET", f"/users?{query}"), 400, fragment)


# -- the default server -------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        # JupyterHub 6's words: the body is {"display_name", "user_options"} or the options.
        ([1], "Body must be a JSON object"),
        ("options", "Body must be a JSON object"),
        (5, "Body must be a JSON object"),
        ({"user_options": [1]}, "user_options must be an object or null"),
        ({"display_name": {}}, "display_name must be a string"),
        (b"{", "Request body must be valid JSON"),
    ],
)
@pytest.mark.parametrize("path", ["/users/alice/server", "/users/alice/servers/"])
def test_start_with_options_that_are_not_an_object(
    app: Flask, api: Api, path: str, body: Any, fragment: str
) -> None:
    check_error(api("POST", path, body), 400, fragment)
    assert server_rows(app) == []


@pytest.mark.parametrize("body", [None, {"user_options": {}}, [1], b"{"])
def test_starting_an_unknown_users_server_is_404_whatever_the_body(
    app: Flask, api: Api, body: Any
) -> None:
    # As in JupyterHub, the user is looked for before the body is read.
    check_error(api("POST", "/users/nobody/server", body), 404, "No such user: nobody")
    assert server_rows(app) == []


def test_progress_of_a_server_never_started_is_404(api: Api) -> None:
    check_error(api("GET", "/users/alice/server/progress"), 404, "alice has no server")


# -- named servers ------------------------------------------------------------


@pytest.mark.parametrize("method", ["POST", "DELETE"])
def test_named_servers_disabled(
    make_app: Callable[..., Flask], make_token: Callable[..., str], method: str
) -> None:
    app = make_app()
    get_users(app).create_many(["alice"])
    headers = {"Authorization": f"token {make_token(app, 'admin', admin=True)}"}
    response = app.test_client().open(
        "/hub/api/users/alice/servers/lab", method=method, headers=headers
    )
    check_error(response, 400, "Named servers are not enabled.")
    assert server_rows(app) == []


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "fragment"),
    [
        ("POST", "/users/alice/servers/.hidden", None, 400, "Invalid server name '.hidden'"),
        ("POST", "/users/alice/servers/a%20b", None, 400, "Invalid server name 'a b'"),
        ("POST", "/users/alice/servers/" + "x" * 256, None, 400, "Invalid server name"),
        ("POST", "/users/alice/servers/lab", [1], 400, "Body must be a JSON object"),
        ("DELETE", "/users/alice/servers/nope", None, 404, "alice has no server named 'nope'"),
        ("DELETE", "/users/alice/servers/lab", {"remove": "yes"}, 400, '{"remove": true}'),
        ("DELETE", "/users/alice/servers/lab", [True], 400, 'Send nothing, or {"remove": true}'),
        ("DELETE", "/users/alice/servers/", {"remove": True}, 400, "Cannot delete the default"),
        ("GET", "/users/alice/servers/nope/progress", None, 404, "no server named 'nope'"),
    ],
)
def test_bad_named_server_requests(
    app: Flask, api: Api, method: str, path: str, body: Any, status: int, fragment: str
) -> None:
    check_error(api(method, path, body), status, fragment)
    assert server_rows(app) == []


def test_named_server_limit_is_400(app: Flask, api: Api) -> None:
    with get_db(app).write() as session:
        alice = session.scalar(select(User).where(User.name == "alice"))
        assert alice is not None
        for name in ("one", "two"):  # stopped ones count until they are removed
            session.add(Server(user=alice, name=name, state=ServerState.STOPPED))
    check_error(
        api("POST", "/users/alice/servers/three"), 400, "already has the maximum of 2 named"
    )
    assert server_rows(app) == [("alice", "one", "stopped"), ("alice", "two", "stopped")]


# -- activity -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"last_activity": "yesterday"}, "Invalid timestamp 'yesterday': use ISO 8601"),
        ({"last_activity": 5}, "Timestamp must be an ISO 8601 string, got 5"),
        ({"last_activity": "2024-05-01T12:00:00"}, "needs a time zone"),
        ({"servers": ["lab"]}, 'servers must be a JSON object: {"<name>": {"last_activity"'),
        ({"servers": {"": {}}}, "servers. needs last_activity"),
        ({"servers": {"lab": NOW}}, "servers.lab needs last_activity"),
        ({"servers": {"": {"last_activity": "soon"}}}, "Invalid timestamp 'soon'"),
        ({"last_activity": NOW, "servers": {"": {"last_activity": 1}}}, "got 1"),
        ([NOW], "Body must be a JSON object"),
        # JupyterHub 6.1's answers: nothing to record, or a server the user has not got.
        ({}, "Send at least one of last_activity and servers"),
        (b"", "Send at least one of last_activity and servers"),
        ({"last_activity": None, "servers": {}}, "Send at least one of last_activity"),
        ({"servers": {"gpu": {"last_activity": NOW}}}, "No such server 'gpu' for user alice"),
        (
            {"last_activity": NOW, "servers": {"": {"last_activity": NOW}}},
            "No such server '' for user alice",
        ),
    ],
)
def test_bad_activity_is_400_and_records_nothing(
    app: Flask, api: Api, body: Any, fragment: str
) -> None:
    check_error(api("POST", "/users/alice/activity", body), 400, fragment)
    alice = get_users(app).get("alice")
    assert alice is not None and alice.last_activity is None


def test_good_activity_is_recorded(app: Flask, api: Api) -> None:
    response = api("POST", "/users/alice/activity", {"last_activity": NOW})
    assert response.status_code == 200, response.text
    assert api("GET", "/users/alice").json["last_activity"] == "2024-05-01T12:00:00.000000Z"


def test_activity_of_a_stopped_named_server_is_recorded(app: Flask, api: Api) -> None:
    assert api("PUT", "/users/alice/servers/lab", {}).status_code == 201
    later = "2024-05-02T12:00:00Z"
    body = {"servers": {"lab": {"last_activity": later}}}
    response = api("POST", "/users/alice/activity", body)
    assert response.status_code == 200, response.text
    lab = api("GET", "/users/alice/servers/lab").json
    assert lab["last_activity"] == "2024-05-02T12:00:00.000000Z"


# -- tokens -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ([1], "Body must be a JSON dict or empty"),
        ({"expires_in": -1}, "token expires_in must be null or a non-negative integer, not -1"),
        ({"expires_in": "60"}, "non-negative integer, not '60'"),
        ({"expires_in": True}, "non-negative integer, not True"),
        ({"expires_in": 1.5}, "non-negative integer, not 1.5"),
        ({"expires_in": 10**10}, f"token expires_in: {10**10} must not exceed"),
        ({"scopes": "read:users"}, "token scopes must be null or a list of strings"),
        ({"scopes": [1]}, "token scopes must be null or a list of strings, not [1]"),
        ({"scopes": ["no-such-scope"]}, "Scope 'no-such-scope' does not exist"),
        ({"scopes": ["read:users!planet=x"]}, "Scope filter '!planet=x'"),
        ({"roles": "admin"}, "token roles must be null or a list of strings"),
        ({"roles": ["wizard"]}, "Role 'wizard' does not exist"),
        ({"note": 5}, "token note must be a string, not 5"),
        ({"scopes": ["admin:users"]}, "requested scopes admin:users not held by user alice"),
        ({"roles": ["admin"]}, "not held by user alice"),
    ],
)
def test_bad_token_requests_are_400_and_create_nothing(
    app: Flask, api: Api, body: Any, fragment: str
) -> None:
    check_error(api("POST", "/users/alice/tokens", body), 400, fragment)
    assert api("GET", "/users/alice/tokens").json == {"api_tokens": []}


@pytest.mark.parametrize("token_id", ["a999999", "b1", "a-1", "1", "a", "bobs"])
@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_unknown_token_id_is_404(
    app: Flask, api: Api, make_token: Callable[..., str], method: str, token_id: str
) -> None:
    make_token(app, "bob")
    if token_id == "bobs":  # a token that exists, but is bob's
        token_id = api("GET", "/users/bob/tokens").json["api_tokens"][0]["id"]
    check_error(
        api(method, f"/users/alice/tokens/{token_id}"),
        404,
        f"No such token {token_id} for user alice",
    )
    assert len(api("GET", "/users/bob/tokens").json["api_tokens"]) == 1


# -- groups -------------------------------------------------------------------


@pytest.fixture
def staff(api: Api) -> dict[str, Any]:
    """The group staff, with alice in it; its model."""
    response = api("POST", "/groups/staff", {"users": ["alice"]})
    assert response.status_code == 201, response.text
    assert response.json is not None
    return response.json


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        (None, 400, "Must specify at least one group to create"),
        ({"groups": []}, 400, "Must specify at least one group to create"),
        ({"groups": "team"}, 400, "groups must be a list of group names"),
        ({"groups": ["bad name"]}, 400, "Invalid group name 'bad name'"),
        ({"groups": [""]}, 400, "Invalid group name ''"),
        ({"groups": [5]}, 400, "Invalid group name 5"),
        ({"groups": ["team"], "users": "alice"}, 400, "users must be a list of usernames"),
        ({"groups": ["team"], "users": ["nobody"]}, 400, NOBODY),
        ({"groups": ["team"], "users": ["no/slash"]}, 400, "Invalid username 'no/slash'"),
        ({"groups": ["team", "staff"]}, 409, "Group staff already exists"),
    ],
)
def test_create_groups_refused(
    api: Api, staff: dict[str, Any], body: Any, status: int, fragment: str
) -> None:
    check_error(api("POST", "/groups", body), status, fragment)
    assert api("GET", "/groups").json == [staff]  # all or nothing: no team


@pytest.mark.parametrize(
    ("name", "body", "status", "fragment"),
    [
        ("bad%20name", None, 400, "Invalid group name 'bad name'"),
        ("staff", None, 409, "Group staff already exists"),
        ("team", {"members": ["alice"]}, 400, 'Send nothing, or {"users": ["name", ...]}.'),
        ("team", {"users": ["nobody"]}, 400, NOBODY),
    ],
)
def test_create_one_group_refused(
    api: Api, staff: dict[str, Any], name: str, body: Any, status: int, fragment: str
) -> None:
    check_error(api("POST", f"/groups/{name}", body), status, fragment)
    assert api("GET", "/groups").json == [staff]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/groups/nope", None),
        ("DELETE", "/groups/nope", None),
        ("POST", "/groups/nope/users", {"users": ["alice"]}),
        ("DELETE", "/groups/nope/users", {"users": ["alice"]}),
        ("GET", "/groups/nope/properties", None),
        ("PUT", "/groups/nope/properties", {"a": 1}),
    ],
)
def test_unknown_group_is_404(api: Api, method: str, path: str, body: Any) -> None:
    check_error(api(method, path, body), 404, "No such group: nope")
    assert api("GET", "/groups").json == []


@pytest.mark.parametrize(
    ("method", "path", "body", "fragment"),
    [
        ("POST", "/groups/staff/users", None, 'Send {"users": ["name", ...]}.'),
        ("POST", "/groups/staff/users", {"user": ["bob"]}, 'Send {"users": ["name", ...]}.'),
        ("POST", "/groups/staff/users", {"users": "bob"}, "users must be a list of usernames"),
        ("POST", "/groups/staff/users", {"users": ["bob", "nobody"]}, NOBODY),
        ("DELETE", "/groups/staff/users", {"users": ["alice", "nobody"]}, NOBODY),
        ("PUT", "/groups/staff/properties", None, "Properties must be a JSON object"),
        ("PUT", "/groups/staff/properties", [1], "Properties must be a JSON object"),
    ],
)
def test_bad_member_and_property_changes_are_400(
    api: Api, staff: dict[str, Any], method: str, path: str, body: Any, fragment: str
) -> None:
    check_error(api(method, path, body), 400, fragment)
    assert api("GET", "/groups/staff").json == staff


# -- proxy --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (None, 'Send {"api_url": "http://host:port", "auth_token": "..."}.'),
        ({}, 'Send {"api_url"'),
        ({"url": "http://127.0.0.1:8001"}, 'Send {"api_url"'),
        ({"api_url": "ftp://127.0.0.1:8001"}, "api_url must be an http(s) URL such as"),
        ({"api_url": "127.0.0.1:8001"}, "not '127.0.0.1:8001'"),
        ({"api_url": "http://127.0.0.1:port"}, "api_url must be an http(s) URL"),
        ({"api_url": "http://"}, "api_url must be an http(s) URL"),
        (
            {"api_url": 8001},
            "api_url must be an http(s) URL such as http://127.0.0.1:8001, not 8001",
        ),
        ({"auth_token": ""}, "auth_token must be a non-empty string"),
        ({"api_url": "http://127.0.0.1:8001", "auth_token": 5}, "auth_token must be a non-empty"),
    ],
)
def test_repointing_the_proxy_refused(app: Flask, api: Api, body: Any, fragment: str) -> None:
    routes = get_servers(app).routes
    proxies = routes.proxies
    check_error(api("PATCH", "/proxy", body), 400, fragment)
    assert routes.proxies is proxies  # still the same proxy


# -- credentials --------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [None, "token not-a-token", "Bearer ", "token", "Basic YWRtaW46", "admin-token"],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/user"),
        ("GET", "/users"),
        ("POST", "/users/carol"),
        ("GET", "/info"),
        ("DELETE", "/users/bob/server"),
        ("GET", "/proxy"),
    ],
)
def test_missing_or_bad_credentials_are_403(
    app: Flask, method: str, path: str, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = app.test_client().open(f"/hub/api{path}", method=method, headers=headers)
    check_error(response, 403, NO_CREDENTIALS)
    assert "carol" not in user_names(app)


@pytest.mark.parametrize(
    ("method", "path", "body", "required"),
    [
        ("GET", "/users/bob", None, "any of [read:users, read:users:name"),
        ("POST", "/users", {"usernames": ["carol"]}, "[admin:users]"),
        ("DELETE", "/users/bob", None, "[delete:users]"),
        ("DELETE", "/users/bob/server", None, "[delete:servers] on user bob"),
        ("GET", "/users/bob/tokens", None, "[read:tokens] on user bob"),
        ("GET", "/info", None, "[read:hub]"),
        ("PATCH", "/proxy", {"api_url": "http://127.0.0.1:1"}, "[proxy]"),
        ("POST", "/groups", {"groups": ["team"]}, "[admin:groups]"),
    ],
)
def test_a_user_token_cannot_act_for_others(
    app: Flask,
    api: Api,
    make_token: Callable[..., str],
    method: str,
    path: str,
    body: Any,
    required: str,
) -> None:
    alice = make_token(app, "alice")
    check_error(api(method, path, body, token=alice), 403, NOT_AUTHORIZED + required)
    assert user_names(app) == ["admin", "alice", "bob"]


def test_the_api_version_needs_no_credentials(api: Api) -> None:
    response = api("GET", "", token=None)
    assert response.status_code == 200
    assert set(response.json) == {"version"}


# -- the login cookie and XSRF --------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [{}, {"X-XSRFToken": "forged"}, {"X-XSRFToken": ""}],
    ids=["none", "forged", "empty"],
)
def test_cookie_post_without_the_xsrf_token_is_403(
    app: Flask, api: Api, log_in: Callable[..., TestResponse], headers: dict[str, str]
) -> None:
    client = app.test_client()
    assert log_in(client, "alice").status_code == 302
    response = client.post("/hub/api/users/alice/tokens", json={}, headers=headers)
    check_error(response, 403, "XSRF cookie does not match POST argument")
    assert api("GET", "/users/alice/tokens").json == {"api_tokens": []}


def test_cookie_requests_with_the_pages_xsrf_token_pass(
    app: Flask, log_in: Callable[..., TestResponse]
) -> None:
    client = app.test_client()
    assert log_in(client, "alice").status_code == 302
    assert client.get("/hub/api/users/alice/tokens").status_code == 200  # reads need none
    xsrf = xsrf_token(client.get("/hub/home").text)
    response = client.post(
        "/hub/api/users/alice/tokens", json={"note": "mine"}, headers={"X-XSRFToken": xsrf}
    )
    assert response.status_code == 201, response.text
    assert response.json is not None and response.json["note"] == "mine"


# -- names in any case (JupyterHub's: `Alice` is `alice` in every call) -------------


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("GET", "/users/Alice", None, 200),
        ("GET", "/users/ALICE", None, 200),
        ("PATCH", "/users/Alice", {"admin": False}, 200),
        ("POST", "/users/Alice/activity", {"last_activity": NOW}, 200),
        ("GET", "/users/Alice/tokens", None, 200),
        (
            "POST",
            "/users/Alice/tokens",
            {"note": "roster", "scopes": ["read:servers!user=alice"]},
            201,
        ),
        ("DELETE", "/users/Alice/server", None, 204),
        ("DELETE", "/users/Alice/servers/lab", None, 404),
        ("GET", "/users/Alice/shared", None, 200),
        ("GET", "/shares/Alice/", None, 404),  # alice has no server
        ("GET", "/share-codes/Alice/", None, 404),
    ],
)
def test_a_name_in_any_case_is_the_user(
    api: Api, method: str, path: str, body: Any, status: int
) -> None:
    response = api(method, path, body)
    assert response.status_code == status, response.text
    if status == 404:
        assert "No such user" not in response.text
    if path == "/users/Alice" or path == "/users/ALICE":
        assert response.json is not None and response.json["name"] == "alice"


def test_delete_in_another_case_deletes_the_user(app: Flask, api: Api) -> None:
    assert api("DELETE", "/users/Bob").status_code == 204
    assert user_names(app) == ["admin", "alice"]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/users/ALICE", None),
        ("POST", "/users/ alice", None),
        ("POST", "/users", {"usernames": ["ALICE"]}),
        ("POST", "/users", {"usernames": ["Alice", "BOB"]}),
    ],
)
def test_creating_a_name_in_another_case_is_a_conflict(
    app: Flask, api: Api, method: str, path: str, body: Any
) -> None:
    check_error(api(method, path, body), 409, "already exist")
    assert user_names(app) == ["admin", "alice", "bob"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/users/ａｌｉｃｅ"),
        ("GET", "/users/𝐚𝐥𝐢𝐜𝐞"),
        ("DELETE", "/users/ａｌｉｃｅ"),
        ("PATCH", "/users/\u212aate"),
        ("POST", "/users/ａｌｉｃｅ/server"),
        ("POST", "/users/alice\u00a0/tokens"),
        ("GET", "/shares/ａｌｉｃｅ/"),
    ],
)
def test_a_look_alike_name_in_the_path_is_refused(
    app: Flask, api: Api, method: str, path: str
) -> None:
    check_error(api(method, path, {}), 400, "Invalid username")
    assert user_names(app) == ["admin", "alice", "bob"]
    assert server_rows(app) == []


@pytest.mark.parametrize(("target", "status"), [("BOB", 200), ("ｂｏｂ", 400), ("bob\u00a0", 400)])
def test_a_share_names_its_user_in_the_normal_form(
    make_app: Callable[..., Flask], make_token: Callable[..., str], target: str, status: int
) -> None:
    app = make_app(admin_access=True)
    get_users(app).create_many(["alice", "bob"])
    with get_db(app).write() as session:
        alice = session.scalar(select(User).where(User.name == "alice"))
        session.add(Server(user=alice, name="", state=ServerState.STOPPED))
    admin = make_token(app, "admin", admin=True)
    response = app.test_client().post(
        "/hub/api/shares/Alice/", json={"user": target}, headers={"Authorization": f"token {admin}"}
    )
    assert response.status_code == status, response.text
    if status == 200:
        assert response.json is not None and response.json["user"] == {"name": "bob"}
    else:
        check_error(response, 400, "Invalid username")


def test_a_user_named_before_look_alikes_were_refused_can_be_renamed_and_deleted(
    app: Flask, api: Api
) -> None:
    with get_db(app).write() as session:
        session.add(User(name="ｋａｔｅ", cookie_id="x"))  # an earlier version's user
    check_error(api("PATCH", "/users/ｋａｔｅ", {"name": "ｋａｔｅ2"}), 400, "Invalid username")
    assert api("PATCH", "/users/ｋａｔｅ", {"name": "kate-old"}).status_code == 200
    assert api("DELETE", "/users/kate-old").status_code == 204
    assert user_names(app) == ["admin", "alice", "bob"]
