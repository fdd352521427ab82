"""authenticator = "ldap" through Chromium: the login form against a real slapd
(tests/ldap_server.py), on the whole system (`flaskhub run`, real CHP)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.browser.providers import admin_flag, whoami
from tests.integration.conftest import Hub, hub_env, start_hub
from tests.ldap_server import GROUPS, PASSWORDS, PEOPLE, start_slapd

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    """A hub logging in against slapd by direct bind; staff may log in, ops are admins."""
    slapd = start_slapd(tmp_path_factory.mktemp("slapd"))
    data_dir = tmp_path_factory.mktemp("ldap-hub") / "data"
    settings = {
        "authenticator": "ldap",
        "ldap_url": slapd.url,
        "ldap_start_tls": False,  # slapd on loopback
        "ldap_bind_dn_template": [f"uid={{username}},{PEOPLE}"],
        "ldap_group_search_base": GROUPS,
        "allowed_groups": ["staff"],
        "admin_groups": ["ops"],
    }
    hub = start_hub(data_dir, hub_env(data_dir, **settings))
    try:
        yield hub
    finally:
        hub.stop()
        slapd.stop()


def sign_in(page: Page, hub: Hub, name: str, password: str) -> None:
    # Back to the home page (a login alone lands on the user's server: redirect_to_server).
    page.goto(f"{hub.public_url}/hub/login?next=%2Fhub%2Fhome")
    page.get_by_label("Username").fill(name)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def test_a_staff_member_logs_in_with_their_directory_password(page: Page, hub: Hub) -> None:
    sign_in(page, hub, "alice", PASSWORDS["alice"])
    assert page.url == f"{hub.public_url}/hub/home"
    assert whoami(page, hub) == "alice"
    assert not admin_flag(hub, "alice")


def test_an_ops_member_is_an_admin(page: Page, hub: Hub) -> None:
    sign_in(page, hub, "carol", PASSWORDS["carol"])
    assert whoami(page, hub) == "carol"
    assert admin_flag(hub, "carol")


def test_a_wrong_password_is_refused_on_the_form(page: Page, hub: Hub) -> None:
    sign_in(page, hub, "alice", "not-her-password")
    expect(page.get_by_role("alert")).to_be_visible()
    assert whoami(page, hub) is None


def test_a_filter_in_the_name_logs_nobody_in(page: Page, hub: Hub) -> None:
    sign_in(page, hub, "*)(uid=*", PASSWORDS["alice"])
    expect(page.get_by_role("alert")).to_be_visible()
    assert whoami(page, hub) is None


def test_someone_outside_the_allowed_group_is_told_as_a_wrong_password(
    page: Page, hub: Hub
) -> None:
    # The form must not tell whose password is right (issue 21, finding 5).
    sign_in(page, hub, "bob", PASSWORDS["bob"])
    refused = page.get_by_role("alert").inner_text()
    sign_in(page, hub, "bob", "not-his-password")
    assert page.get_by_role("alert").inner_text() == refused
    assert "Invalid username or password." in refused
    assert whoami(page, hub) is None
