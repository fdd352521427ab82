"""authenticator = "ldap" against a real OpenLDAP (Debian's slapd) started for the module."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import ldap3
import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from app.auth import get_authenticator
from app.auth.providers.ldap import LDAPAuthenticator
from app.config import ConfigError, load
from app.users import get_users
from tests.helpers import free_port, xsrf_token
from tests.ldap_server import (
    GROUPS,
    PASSWORDS,
    PEOPLE,
    ROOT_DN,
    ROOT_PASSWORD,
    SUFFIX,
    Slapd,
    person_dn,
    start_slapd,
)

needs_slapd = pytest.mark.process
# ldap3 checks the server's name with ssl.match_hostname, deprecated since Python 3.7 (a
# DeprecationWarning, an error under filterwarnings = error; the check itself is done).
over_tls = pytest.mark.filterwarnings("ignore:ssl.match_hostname:DeprecationWarning")


@pytest.fixture(scope="module")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    server = start_slapd(tmp_path_factory.mktemp("slapd"))
    try:
        yield server
    finally:
        server.stop()


DIRECT = {"ldap_bind_dn_template": [f"uid={{username}},{PEOPLE}"]}
SEARCH = {"ldap_search_base": PEOPLE}
SEARCH_AS_SERVICE = {**SEARCH, "ldap_bind_dn": ROOT_DN, "ldap_bind_password": ROOT_PASSWORD}


@pytest.fixture
def ldap_hub(make_app: Callable[..., Flask], slapd: Slapd) -> Callable[..., Flask]:
    """ldap_hub(**settings): a hub logging in against slapd (direct bind, staff allowed)."""

    def make(**overrides: Any) -> Flask:
        settings = {
            "authenticator": "ldap",
            "ldap_url": slapd.url,
            "ldap_start_tls": False,
            "ldap_group_search_base": GROUPS,
            "allowed_groups": ["staff"],
            "admin_groups": ["ops"],
            **({} if "ldap_search_base" in overrides else DIRECT),
            **overrides,
        }
        return make_app(**settings)

    return make


def sign_in(client: FlaskClient, name: str, password: str) -> TestResponse:
    form = {
        "username": name,
        "password": password,
        "_xsrf": xsrf_token(client.get("/hub/login").text),
    }
    return client.post("/hub/login", data=form)


def logged_in_as(client: FlaskClient) -> str | None:
    response = client.get("/hub/api/user")
    return response.json["name"] if response.status_code == 200 else None  # type: ignore[index]


@needs_slapd
@pytest.mark.parametrize(
    "mode", [DIRECT, SEARCH, SEARCH_AS_SERVICE], ids=["direct", "search", "service"]
)
@pytest.mark.parametrize("name", ["alice", "J+Doe"])
def test_login(ldap_hub: Callable[..., Flask], mode: dict[str, Any], name: str) -> None:
    client = ldap_hub(**mode).test_client()
    response = sign_in(client, name, PASSWORDS[name.lower()])
    assert response.status_code == 302, response.text
    assert logged_in_as(client) == name.lower()


def _without_tokens(html: str) -> str:
    return re.sub(r'(value|content)="[^"]*"', "", html)


@needs_slapd
@pytest.mark.parametrize("mode", [DIRECT, SEARCH], ids=["direct", "search"])
@pytest.mark.parametrize(
    ("name", "password"),
    [("alice", "bob-pw"), ("alice", ""), ("nobody", "alice-pw"), ("alice", "alice-pw ")],
)
def test_wrong_password_is_refused(
    ldap_hub: Callable[..., Flask], mode: dict[str, Any], name: str, password: str
) -> None:
    client = ldap_hub(**mode).test_client()
    response = sign_in(client, name, password)
    assert response.status_code == 403
    assert "Invalid username or password." in response.text
    assert logged_in_as(client) is None


@needs_slapd
@pytest.mark.parametrize("mode", [DIRECT, SEARCH], ids=["direct", "search"])
@pytest.mark.parametrize("name", ["*)(uid=*", "*", "alice)(uid=*", "al*"])
def test_filter_characters_in_a_name_are_refused(
    ldap_hub: Callable[..., Flask], mode: dict[str, Any], name: str
) -> None:
    hub = ldap_hub(**mode)
    client = hub.test_client()
    response = sign_in(client, name, "alice-pw")
    assert response.status_code == 403
    assert "Invalid username" in response.text
    assert logged_in_as(client) is None
    assert get_users(hub).count() == 0


@needs_slapd
@pytest.mark.parametrize("mode", [DIRECT, SEARCH], ids=["direct", "search"])
@pytest.mark.parametrize("name", ["al*", "*", "alice)(uid=*", "alice,ou=people"])
def test_values_are_escaped_in_filters_and_dns(
    ldap_hub: Callable[..., Flask], mode: dict[str, Any], name: str
) -> None:
    """Past the name check too: unescaped, `al*` would find alice's entry and bind as her."""
    hub = ldap_hub(**mode)
    with hub.app_context():
        authenticator = get_authenticator(hub)
        assert isinstance(authenticator, LDAPAuthenticator)
        assert authenticator._authenticate(name, "alice-pw") is None
        assert authenticator._authenticate("alice", "alice-pw") is not None


@needs_slapd
def test_admin_groups_granted_then_removed(ldap_hub: Callable[..., Flask], slapd: Slapd) -> None:
    hub = ldap_hub()
    assert sign_in(hub.test_client(), "carol", "carol-pw").status_code == 302
    assert get_users(hub).get("carol").admin  # type: ignore[union-attr]
    ops = f"cn=ops,{GROUPS}"
    manager = ldap3.Connection(slapd.url, ROOT_DN, ROOT_PASSWORD, auto_bind=True)
    # groupOfNames needs a member: hand ops to alice, take carol out.
    assert manager.modify(ops, {"member": [(ldap3.MODIFY_REPLACE, [person_dn("alice")])]})
    try:
        assert sign_in(hub.test_client(), "carol", "carol-pw").status_code == 302
        assert not get_users(hub).get("carol").admin  # type: ignore[union-attr]
        assert sign_in(hub.test_client(), "alice", "alice-pw").status_code == 302
        assert get_users(hub).get("alice").admin  # type: ignore[union-attr]
    finally:
        manager.modify(ops, {"member": [(ldap3.MODIFY_REPLACE, [person_dn("carol")])]})
        manager.unbind()


@needs_slapd
@pytest.mark.parametrize(
    ("name", "settings"),
    [
        ("bob", {}),  # in no group
        ("alice", {"blocked_users": ["alice"]}),
        ("carol", {"allowed_groups": ["nobody-here"], "admin_groups": []}),
    ],
)
def test_not_allowed_gets_a_403_page(
    ldap_hub: Callable[..., Flask], name: str, settings: dict[str, Any]
) -> None:
    hub = ldap_hub(**settings)
    client = hub.test_client()
    response = sign_in(client, name, PASSWORDS[name])
    assert response.status_code == 403
    # The right password of someone refused answers as a wrong one (issue 21, finding 5).
    wrong = sign_in(hub.test_client(), name, "not the password")
    assert wrong.status_code == 403
    assert "Invalid username or password." in response.text
    assert _without_tokens(response.text) == _without_tokens(wrong.text)
    assert logged_in_as(client) is None
    assert get_users(hub).get(name) is None


@needs_slapd
@pytest.mark.parametrize("mode", [DIRECT, SEARCH], ids=["direct", "search"])
def test_server_down_is_a_clear_error_page(
    ldap_hub: Callable[..., Flask], mode: dict[str, Any]
) -> None:
    hub = ldap_hub(ldap_url=f"ldap://127.0.0.1:{free_port()}", ldap_timeout=5, **mode)
    client = hub.test_client()
    response = sign_in(client, "alice", "alice-pw")
    assert response.status_code == 503
    assert response.mimetype == "text/html"
    assert "The login service (LDAP) cannot be reached" in response.text
    assert logged_in_as(client) is None


@needs_slapd
@over_tls
@pytest.mark.parametrize("how", ["starttls", "ldaps"])
@pytest.mark.parametrize("mode", [DIRECT, SEARCH_AS_SERVICE], ids=["direct", "search"])
def test_login_over_tls(
    ldap_hub: Callable[..., Flask], slapd: Slapd, how: str, mode: dict[str, Any]
) -> None:
    url = slapd.url if how == "starttls" else slapd.ldaps_url
    hub = ldap_hub(ldap_url=url, ldap_start_tls=True, ldap_ca_file=str(slapd.ca_file), **mode)
    client = hub.test_client()
    assert sign_in(client, "alice", "alice-pw").status_code == 302
    assert logged_in_as(client) == "alice"


@needs_slapd
@over_tls
@pytest.mark.parametrize("how", ["starttls", "ldaps"])
def test_untrusted_certificate_is_refused(
    ldap_hub: Callable[..., Flask],
    slapd: Slapd,
    how: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Without ldap_ca_file the system's CAs do not trust the server: no password is sent."""
    url = slapd.url if how == "starttls" else slapd.ldaps_url
    client = ldap_hub(ldap_url=url, ldap_start_tls=True).test_client()
    response = sign_in(client, "alice", "alice-pw")
    assert response.status_code == 503
    assert "The login service (LDAP) cannot be reached" in response.text
    assert "certificate verify failed" in caplog.text  # logged for the operator
    assert logged_in_as(client) is None


@needs_slapd
def test_refused_service_account_says_so(ldap_hub: Callable[..., Flask]) -> None:
    hub = ldap_hub(**{**SEARCH_AS_SERVICE, "ldap_bind_password": "wrong"})
    response = sign_in(hub.test_client(), "alice", "alice-pw")
    assert response.status_code == 503
    assert "service account (ldap_bind_dn) was refused" in response.text


# -- settings -----------------------------------------------------------------

LDAP = {"authenticator": "ldap", "ldap_url": "ldaps://ldap.example.org", **DIRECT}


def test_ldap_without_allow_settings_does_not_start(clean_env: Path) -> None:
    with pytest.raises(ConfigError) as e:
        load(environ={}, overrides=LDAP)
    for name in ("allowed_users", "allowed_groups", "allow_all"):
        assert name in str(e.value)


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"ldap_url": ""}, "ldap_url"),
        ({"ldap_url": "http://ldap.example.org"}, "ldap_url"),
        ({"ldap_url": "ldap://ldap.example.org", "ldap_start_tls": False}, "ldap_start_tls"),
        ({"ldap_bind_dn_template": []}, "ldap_search_base"),
        ({"ldap_search_base": SUFFIX}, "ldap_bind_dn_template"),
        ({"ldap_bind_dn_template": ["uid=alice,dc=x"]}, "ldap_bind_dn_template"),
        ({"ldap_bind_dn_template": ["uid={username},{base}"]}, "ldap_bind_dn_template"),
        ({"ldap_group_search_filter": "(member={user})"}, "ldap_group_search_filter"),
        # A bind name that is no DN names no entry whose own name the hub could read.
        ({"ldap_bind_dn_template": ["{username}@example.org"]}, "ldap_bind_dn_template"),
        ({"ldap_username_attribute": ""}, "ldap_username_attribute"),
        ({"ldap_username_attribute": "uid)(cn=*"}, "ldap_username_attribute"),
    ],
)
def test_bad_ldap_settings_are_named(clean_env: Path, changes: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        load(environ={}, overrides={**LDAP, "allow_all": True, **changes})


@pytest.mark.parametrize("url", ["ldaps://ldap.example.org:636", "ldap://127.0.0.1:3389"])
def test_good_ldap_settings(clean_env: Path, url: str) -> None:
    settings = load(
        environ={}, overrides={**LDAP, "ldap_url": url, "ldap_start_tls": False, "allow_all": True}
    )
    assert settings.ldap_url == url


# -- look-alike names: OpenLDAP matches uid=ａｌｉｃｅ and uid=𝐚𝐥𝐢𝐜𝐞 to alice's entry ----

LOOK_ALIKES = ["ａｌｉｃｅ", "𝐚𝐥𝐢𝐜𝐞", "ALİCE", "alice\u00a0", "ｃarol", "ｃａｒｏｌ"]


@pytest.fixture(scope="module")
def look_alike_entry(slapd: Slapd) -> Iterator[str]:
    """An entry whose own uid is fullwidth (ｄａｖｅ): OpenLDAP binds `dave` to it."""
    dn = f"uid=ｄａｖｅ,{PEOPLE}"
    manager = ldap3.Connection(slapd.url, ROOT_DN, ROOT_PASSWORD, auto_bind=True)
    attributes = {"uid": "ｄａｖｅ", "cn": "dave", "sn": "dave", "userPassword": "dave-pw"}
    assert manager.add(dn, "inetOrgPerson", attributes), manager.result
    try:
        yield dn
    finally:
        manager.delete(dn)
        manager.unbind()


@needs_slapd
@pytest.mark.parametrize("mode", [DIRECT, SEARCH], ids=["direct", "search"])
@pytest.mark.parametrize("name", LOOK_ALIKES)
def test_a_look_alike_of_a_name_is_refused_before_binding(
    ldap_hub: Callable[..., Flask], mode: dict[str, Any], name: str
) -> None:
    # alice is blocked, carol an admin by her group: a variant must not get past either.
    hub = ldap_hub(blocked_users=["alice"], **mode)
    client = hub.test_client()
    password = "carol-pw" if "rol" in name else "alice-pw"
    response = sign_in(client, name, password)
    assert response.status_code == 403
    assert "Invalid username" in response.text
    assert logged_in_as(client) is None
    assert get_users(hub).count() == 0


@needs_slapd
@pytest.mark.parametrize("mode", [DIRECT, SEARCH], ids=["direct", "search"])
def test_an_entry_whose_uid_is_not_the_name_is_refused(
    ldap_hub: Callable[..., Flask], look_alike_entry: str, mode: dict[str, Any]
) -> None:
    """`dave` binds as uid=ｄａｖｅ: its own uid is no normal name, so not dave's."""
    hub = ldap_hub(allow_all=True, **mode)
    client = hub.test_client()
    response = sign_in(client, "dave", "dave-pw")
    assert response.status_code == 403
    assert "Invalid username or password." in response.text
    assert logged_in_as(client) is None
    assert get_users(hub).count() == 0


@needs_slapd
def test_the_entrys_uid_in_another_case_is_the_name(
    ldap_hub: Callable[..., Flask], slapd: Slapd
) -> None:
    dn = f"uid=Erin,{PEOPLE}"
    manager = ldap3.Connection(slapd.url, ROOT_DN, ROOT_PASSWORD, auto_bind=True)
    attributes = {"uid": "Erin", "cn": "erin", "sn": "erin", "userPassword": "erin-pw"}
    assert manager.add(dn, "inetOrgPerson", attributes), manager.result
    try:
        for mode in (DIRECT, SEARCH):
            client = ldap_hub(allow_all=True, **mode).test_client()
            assert sign_in(client, "ERIN", "erin-pw").status_code == 302
            assert logged_in_as(client) == "erin"
    finally:
        manager.delete(dn)
        manager.unbind()
