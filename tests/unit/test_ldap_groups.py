"""Issue 21, finding 7 with LDAP: leaving `admin_groups` in the directory ends admin at
the next request of the cookie or a token, past `auth_refresh_age` (real slapd)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import ldap3
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import update

from app.db import get_db
from app.models import User, utcnow
from tests.helpers import free_port, wait_for, xsrf_token
from tests.ldap_server import GROUPS, PEOPLE, ROOT_DN, ROOT_PASSWORD, Slapd, person_dn, start_slapd

pytestmark = pytest.mark.process

REFRESH_AGE = 0.5
OPS = f"cn=ops,{GROUPS}"
STAFF = f"cn=staff,{GROUPS}"


@pytest.fixture(scope="module")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    server = start_slapd(tmp_path_factory.mktemp("slapd"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def directory(slapd: Slapd) -> Iterator[Callable[[str, list[str]], None]]:
    """set(group, uids): the directory's manager sets a group's members; undone after."""
    manager = ldap3.Connection(slapd.url, ROOT_DN, ROOT_PASSWORD, auto_bind=True)
    before: dict[str, list[str]] = {}

    def set_members(group: str, uids: list[str]) -> None:
        if group not in before:
            manager.search(group, "(objectClass=*)", ldap3.BASE, attributes=["member"])
            before[group] = list(manager.entries[0].member.values)
        members = [person_dn(uid) for uid in uids]
        assert manager.modify(group, {"member": [(ldap3.MODIFY_REPLACE, members)]})

    yield set_members
    for group, members in before.items():
        manager.modify(group, {"member": [(ldap3.MODIFY_REPLACE, members)]})
    manager.unbind()


@pytest.fixture
def settings(slapd: Slapd) -> dict[str, Any]:
    return {
        "authenticator": "ldap",
        "ldap_url": slapd.url,
        "ldap_start_tls": False,
        "ldap_bind_dn_template": [f"uid={{username}},{PEOPLE}"],
        "ldap_group_search_base": GROUPS,
        # The service account re-reads the groups: the user's password is not kept.
        "ldap_bind_dn": ROOT_DN,
        "ldap_bind_password": ROOT_PASSWORD,
        "allowed_groups": ["staff"],
        "admin_groups": ["ops"],
        "auth_refresh_age": REFRESH_AGE,
    }


@pytest.fixture
def hub(make_app: Callable[..., Flask], settings: dict[str, Any]) -> Flask:
    return make_app(**settings)


def _signed_in(hub: Flask, name: str, password: str) -> FlaskClient:
    client = hub.test_client()
    form = {
        "username": name,
        "password": password,
        "_xsrf": xsrf_token(client.get("/hub/login").text),
    }
    assert client.post("/hub/login", data=form).status_code == 302
    return client


def _admin_by_cookie(client: FlaskClient) -> bool:
    return client.get("/hub/api/info").status_code == 200


def _admin_by_token(hub: Flask, token: str) -> bool:
    headers = {"Authorization": f"token {token}"}
    return hub.test_client().get("/hub/api/info", headers=headers).status_code == 200


def test_leaving_the_admin_group_ends_admin_for_cookies_and_tokens(
    hub: Flask, make_token: Callable[..., str], directory: Callable[[str, list[str]], None]
) -> None:
    carol = _signed_in(hub, "carol", "carol-pw")
    token = make_token(hub, "carol")
    assert _admin_by_cookie(carol) and _admin_by_token(hub, token)
    directory(OPS, ["alice"])  # carol out of ops
    # The token's request alone notices (no cookie request comes first).
    wait_for(lambda: not _admin_by_token(hub, token), timeout=REFRESH_AGE + 10)
    assert not _admin_by_cookie(carol)
    assert carol.get("/hub/api/user").status_code == 200  # still carol, not admin
    directory(OPS, ["carol"])
    wait_for(lambda: _admin_by_cookie(carol), timeout=REFRESH_AGE + 10)
    directory(OPS, ["alice"])
    wait_for(lambda: not _admin_by_cookie(carol), timeout=REFRESH_AGE + 10)


def test_leaving_the_allowed_groups_ends_the_login(
    hub: Flask, make_token: Callable[..., str], directory: Callable[[str, list[str]], None]
) -> None:
    carol = _signed_in(hub, "carol", "carol-pw")
    token = make_token(hub, "carol")
    directory(STAFF, ["alice"])
    directory(OPS, ["alice"])
    headers = {"Authorization": f"token {token}"}
    wait_for(
        lambda: hub.test_client().get("/hub/api/user", headers=headers).status_code == 403,
        timeout=REFRESH_AGE + 10,
    )
    assert carol.get("/hub/api/user").status_code == 403


def test_a_directory_that_does_not_answer_changes_nothing(
    hub: Flask,
    make_app: Callable[..., Flask],
    make_token: Callable[..., str],
    settings: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The same hub's database, served by a hub whose directory is down.
    _signed_in(hub, "carol", "carol-pw")
    token = make_token(hub, "carol")
    down = make_app(**{**settings, "ldap_url": f"ldap://127.0.0.1:{free_port()}"})
    with get_db(hub).write() as session:  # the login is stale
        session.execute(update(User).values(auth_refreshed=utcnow() - timedelta(hours=1)))
    assert _admin_by_token(down, token)  # not known to be wrong: kept as it was
    assert "Could not refresh the login of carol" in caplog.text
    assert _admin_by_token(hub, token)


def test_a_login_one_process_finds_refused_ends_its_tokens_in_another(
    make_app: Callable[..., Flask],
    make_token: Callable[..., str],
    settings: dict[str, Any],
    directory: Callable[[str, list[str]], None],
) -> None:
    """Two hub processes (two apps on one database): the first to look at carol's stale
    login finds it refused, and the other, which kept her token and knew her login
    fresh for an hour from its own last look, refuses the token at its next request."""
    hourly = {**settings, "auth_refresh_age": 3600}
    second = make_app(**hourly)
    _signed_in(second, "carol", "carol-pw")
    token = make_token(second, "carol")
    assert _admin_by_token(second, token)
    directory(STAFF, ["alice"])  # carol no longer allowed
    directory(OPS, ["alice"])
    with get_db(second).write() as session:  # her login stale, as time would make it
        session.execute(update(User).values(auth_refreshed=utcnow() - timedelta(hours=2)))
    first = make_app(**hourly)  # a process that has not looked at her login yet
    assert not _admin_by_token(first, token)
    headers = {"Authorization": f"token {token}"}
    assert first.test_client().get("/hub/api/user", headers=headers).status_code == 403
    assert second.test_client().get("/hub/api/user", headers=headers).status_code == 403
