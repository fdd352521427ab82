"""Sharing through the running system (JupyterHub 5's API): alice shares her running
server (the built-in one) with bob, who opens it in his browser through the hub's
OAuth while carol cannot; a share code accepted on /hub/accept-share; group shares;
revocation; and the refusals.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import requests

from tests.helpers import wait_for, xsrf_token
from tests.integration.conftest import Hub, login

pytestmark = pytest.mark.integration

SERVER = "/shares/alice/"
BROWSER = {"Accept": "text/html"}


@pytest.fixture(scope="module")
def hub(hub_factory: Callable[..., Hub]) -> Hub:
    # As JupyterHub's sharing docs: users may share their servers, with others they can
    # name, only once a role grants it.
    user_role = {
        "name": "user",
        "scopes": ["self", "shares!user", "read:users:name", "read:groups:name"],
    }
    hub = hub_factory(load_roles=[user_role])
    hub.api("POST", "/users/alice")
    assert hub.api("POST", "/users/alice/server").status_code in (201, 202)
    wait_for(lambda: hub.api("GET", "/users/alice").json()["servers"][""]["ready"], timeout=30)
    for name in ("bob", "carol", "dave"):
        hub.api("POST", f"/users/{name}")
    return hub


@pytest.fixture(scope="module")
def tokens(hub: Hub) -> dict[str, str]:
    return {name: hub.token(name) for name in ("alice", "bob", "carol", "dave")}


def opens_alice_server(browser: requests.Session, hub: Hub) -> requests.Response:
    """Open alice's server as a browser does (through the hub's OAuth if needed)."""
    return browser.get(f"{hub.public_url}/user/alice/", headers=BROWSER, timeout=30)


def test_a_share_lets_bob_open_alices_server_and_not_carol(
    hub: Hub, tokens: dict[str, str]
) -> None:
    granted = hub.api("POST", SERVER, tokens["alice"], json={"user": "bob"})
    assert granted.status_code == 200, granted.text
    share = granted.json()
    assert share["scopes"] == ["access:servers!server=alice/"]
    assert share["kind"] == "user" and share["user"] == {"name": "bob"} and share["group"] is None
    assert share["server"] == {
        "user": {"name": "alice"},
        "name": "",
        "url": "/user/alice/",
        "full_url": f"{hub.public_url}/user/alice/",
        "ready": True,
    }
    bob = opens_alice_server(login(hub, "bob"), hub)
    assert bob.status_code == 200, bob.text
    assert any("/hub/api/oauth2/authorize" in r.url for r in bob.history)
    carol = opens_alice_server(login(hub, "carol"), hub)
    assert carol.status_code == 403
    assert "carol is not allowed to use alice" in carol.text
    # Bob may open the server and nothing else of alice's (her name only: read:users:name).
    assert "servers" not in hub.api("GET", "/users/alice", tokens["bob"]).json()
    assert hub.api("DELETE", "/users/alice/server", tokens["bob"]).status_code == 403
    assert hub.api("POST", SERVER, tokens["bob"], json={"user": "carol"}).status_code == 403
    listed = hub.api("GET", "/users/bob/shared", tokens["bob"]).json()
    assert [s["server"]["url"] for s in listed["items"]] == ["/user/alice/"]
    assert listed["_pagination"]["total"] == 1
    assert hub.api("GET", "/shares/alice", tokens["alice"]).json()["_pagination"]["total"] == 1


def test_revoking_the_share_closes_the_door(hub: Hub, tokens: dict[str, str]) -> None:
    hub.api("POST", SERVER, tokens["alice"], json={"user": "bob"})
    revoked = hub.api("PATCH", SERVER, tokens["alice"], json={"user": "bob"})
    assert revoked.status_code == 200 and revoked.json() == {}
    assert hub.api("GET", "/users/bob/shared", tokens["bob"]).json()["items"] == []
    assert opens_alice_server(login(hub, "bob"), hub).status_code == 403
    # Bob may also give a share up himself.
    hub.api("POST", SERVER, tokens["alice"], json={"user": "bob"})
    mine = hub.api("GET", "/users/bob/shared/alice/", tokens["bob"])
    assert mine.status_code == 200 and mine.json()["user"] == {"name": "bob"}
    assert hub.api("DELETE", "/users/bob/shared/alice/", tokens["bob"]).status_code == 204
    assert hub.api("GET", "/users/bob/shared/alice/", tokens["bob"]).status_code == 404


def test_a_share_code_accepted_in_the_browser(hub: Hub, tokens: dict[str, str]) -> None:
    created = hub.api("POST", "/share-codes/alice/", tokens["alice"], json={"expires_in": 3600})
    assert created.status_code == 200, created.text
    code = created.json()
    assert code["id"].startswith("sc_") and code["exchange_count"] == 0
    assert code["accept_url"] == f"/hub/accept-share?code={code['code']}"
    carol = login(hub, "carol")
    page = carol.get(f"{hub.public_url}{code['accept_url']}", timeout=10)
    assert page.status_code == 200
    assert "alice wants to share" in page.text
    accepted = carol.post(
        f"{hub.public_url}/hub/accept-share",
        data={"code": code["code"], "_xsrf": xsrf_token(page.text)},
        headers=BROWSER,
        timeout=30,
    )
    assert accepted.status_code == 200, accepted.text
    assert accepted.url == f"{hub.public_url}/user/alice/"
    codes = hub.api("GET", "/share-codes/alice", tokens["alice"]).json()["items"]
    assert [(c["id"], c["exchange_count"]) for c in codes] == [(code["id"], 1)]
    assert "code" not in codes[0]
    # alice cannot accept her own code; a deleted code is gone.
    own = login(hub, "alice").get(f"{hub.public_url}{code['accept_url']}", timeout=10)
    assert own.status_code == 403
    gone = hub.api("DELETE", f"/share-codes/alice/?id={code['id']}", tokens["alice"])
    assert gone.status_code == 204
    assert carol.get(f"{hub.public_url}{code['accept_url']}", timeout=10).status_code == 404


def test_a_group_share_reaches_its_members(hub: Hub, tokens: dict[str, str]) -> None:
    hub.api("POST", "/groups/team", json={"users": ["dave"]})
    granted = hub.api("POST", SERVER, tokens["alice"], json={"group": "team"})
    assert granted.status_code == 200, granted.text
    assert granted.json()["kind"] == "group"
    shared = hub.api("GET", "/users/dave/shared", tokens["dave"]).json()["items"]
    assert [s["group"] for s in shared] == [{"name": "team"}]
    assert len(hub.api("GET", "/groups/team/shared").json()["items"]) == 1
    assert opens_alice_server(login(hub, "dave"), hub).status_code == 200
    assert hub.api("DELETE", SERVER, tokens["alice"]).status_code == 204
    assert hub.api("GET", "/users/dave/shared", tokens["dave"]).json()["items"] == []


@pytest.mark.parametrize(
    ("path", "body", "status", "says"),
    [
        (SERVER, {"user": "bob", "group": "team"}, 400, "exactly one of"),
        (SERVER, {}, 400, "exactly one of"),
        (SERVER, {"user": "nobody"}, 400, "No such user: nobody"),
        (SERVER, {"user": "bob", "scopes": ["read:servers!server=bob/"]}, 400, "not allowed"),
        (SERVER, {"user": "bob", "scopes": ["no-such-scope"]}, 400, "no-such-scope"),
        (SERVER, {"user": "bob", "expires_in": 60}, 400, "expires_in"),
        ("/shares/alice/nope", {"user": "bob"}, 404, "No such server: alice/nope"),
        ("/share-codes/alice/", {"expires_in": 10}, 400, "expires_in"),
    ],
)
def test_bad_share_requests(
    hub: Hub, tokens: dict[str, str], path: str, body: Any, status: int, says: str
) -> None:
    response = hub.api("POST", path, tokens["alice"], json=body)
    assert response.status_code == status, response.text
    assert says in response.json()["message"]
