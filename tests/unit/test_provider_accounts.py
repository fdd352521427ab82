"""A name from an identity provider is bound to the provider's account (issuer, sub) at its
first login; look-alike names are refused. Against the real oidc-provider (tests/oidc/),
the login form driven with requests, the hub through Flask's test client."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from app.auth.providers.oauth2 import OAuth2Authenticator
from app.config import load
from app.outcomes import Forbidden
from app.users import UserService, get_users
from tests.oidc_server import CLIENT_ID, CLIENT_SECRET, OpenIDProvider

CALLBACK = "http://127.0.0.1:8000/hub/oauth_callback"


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenIDProvider]:
    server = OpenIDProvider(tmp_path_factory.mktemp("provider"), [CALLBACK])
    server.start()
    try:
        yield server
    finally:
        server.stop()


def provider_settings(provider: OpenIDProvider, kind: str) -> dict[str, Any]:
    common = {
        "authenticator": kind,
        "oauth_client_id": CLIENT_ID,
        "oauth_client_secret": CLIENT_SECRET,
        "oauth_ca_file": str(provider.ca_file),
        "oauth_callback_url": CALLBACK,
        "oauth_scopes": ["openid", "profile", "groups"],
        "oauth_timeout": 5,
        "allowed_groups": ["staff"],
    }
    if kind == "oidc":
        return {**common, "oauth_issuer": provider.issuer}
    return {
        **common,
        "oauth_authorize_url": f"{provider.issuer}/auth",
        "oauth_token_url": f"{provider.issuer}/token",
        "oauth_userinfo_url": f"{provider.issuer}/me",
    }


@pytest.fixture(params=["oidc", "oauth2"])
def hub(
    request: pytest.FixtureRequest, make_app: Callable[..., Flask], provider: OpenIDProvider
) -> Flask:
    return make_app(**provider_settings(provider, request.param))


def sign_in(client: FlaskClient, provider: OpenIDProvider, login: str) -> TestResponse:
    """From the hub's /hub/oauth_login through the provider's login form to the hub's
    callback; the callback's response."""
    start = client.get("/hub/oauth_login")
    assert start.status_code == 302, start.text
    browser = requests.Session()
    # Passed on each call: a session's own `verify` loses to REQUESTS_CA_BUNDLE.
    ca = str(provider.ca_file)
    page = browser.get(start.headers["Location"], verify=ca, timeout=10)
    assert page.status_code == 200 and 'name="login"' in page.text, page.text
    action = page.text.split('action="', 1)[1].split('"', 1)[0]
    answer = browser.post(
        urljoin(page.url, action),
        data={"prompt": "login", "login": login, "password": "any password"},
        allow_redirects=False,
        verify=ca,
        timeout=10,
    )
    while not answer.headers.get("Location", "").startswith(CALLBACK):
        assert answer.status_code in (302, 303), answer.text
        answer = browser.get(
            urljoin(answer.url, answer.headers["Location"]),
            allow_redirects=False,
            verify=ca,
            timeout=10,
        )
    return client.get("/hub/oauth_callback?" + urlsplit(answer.headers["Location"]).query)


def logged_in_as(client: FlaskClient) -> str | None:
    response = client.get("/hub/api/user")
    return response.json["name"] if response.status_code == 200 else None  # type: ignore[index]


pytestmark = pytest.mark.process


def test_first_login_binds_the_name_and_another_account_is_refused(
    hub: Flask, provider: OpenIDProvider
) -> None:
    kate = hub.test_client()
    assert sign_in(kate, provider, "kate").status_code == 302
    assert logged_in_as(kate) == "kate"
    # Another account of the provider whose preferred_username is "Kate".
    other = hub.test_client()
    response = sign_in(other, provider, "kate-upper")
    assert response.status_code == 403
    assert response.mimetype == "text/html"
    assert "belongs to another account of the identity provider" in response.text
    assert "ask the hub&#39;s administrators" in response.text
    assert logged_in_as(other) is None
    # kate herself still gets in.
    assert sign_in(hub.test_client(), provider, "kate").status_code == 302


@pytest.mark.parametrize(
    "login",
    ["kate-kelvin", "kate-spaces", "kate-ascii-spaces", "kate-fullwidth", "kate-bold", "kate-nbsp"],
)
def test_a_look_alike_claim_is_refused_never_merged(
    hub: Flask, provider: OpenIDProvider, login: str
) -> None:
    kate = hub.test_client()
    assert sign_in(kate, provider, "kate").status_code == 302
    client = hub.test_client()
    response = sign_in(client, provider, login)
    assert response.status_code in (400, 403), response.text
    assert "Invalid username" in response.text
    assert logged_in_as(client) is None
    assert [u.name for u in get_users(hub).page()[0]] == ["kate"]


def test_a_name_in_another_script_is_another_user(hub: Flask, provider: OpenIDProvider) -> None:
    assert sign_in(hub.test_client(), provider, "kate").status_code == 302
    client = hub.test_client()
    assert sign_in(client, provider, "kate-cyrillic").status_code == 302
    assert logged_in_as(client) == "kаte" != "kate"
    assert sorted(u.name for u in get_users(hub).page()[0]) == ["kate", "kаte"]


def test_a_user_from_before_the_binding_is_bound_at_the_next_login(
    hub: Flask, provider: OpenIDProvider
) -> None:
    get_users(hub).create_many(["kate"])  # by the API, say: no account bound yet
    client = hub.test_client()
    assert sign_in(client, provider, "kate-upper").status_code == 302
    assert logged_in_as(client) == "kate"
    assert sign_in(hub.test_client(), provider, "kate").status_code == 403


def test_unbinding_lets_the_next_account_bind(hub: Flask, provider: OpenIDProvider) -> None:
    assert sign_in(hub.test_client(), provider, "kate").status_code == 302
    users = get_users(hub)
    issuer, subject = users.unbind_provider("kate") or ("", "")
    assert subject == "kate" and issuer.startswith("https://127.0.0.1:")
    client = hub.test_client()
    assert sign_in(client, provider, "kate-upper").status_code == 302
    assert logged_in_as(client) == "kate"
    assert sign_in(hub.test_client(), provider, "kate").status_code == 403


# -- without a provider: GitHub's stable id, and two first logins at once ------------


@pytest.mark.parametrize(
    ("setting", "claims", "expected"),
    [
        ("", {"login": "kate", "id": 1234}, "1234"),
        ("", {"sub": "abc", "id": 1234}, "abc"),
        ("uuid", {"uuid": "{0f1e}", "id": 1234}, "{0f1e}"),
    ],
)
def test_oauth2_subject_is_the_providers_stable_id(
    clean_env: Path, setting: str, claims: dict[str, Any], expected: str
) -> None:
    settings = load(
        environ={},
        overrides={
            "authenticator": "oauth2",
            "oauth_authorize_url": "https://github.com/login/oauth/authorize",
            "oauth_token_url": "https://github.com/login/oauth/access_token",
            "oauth_userinfo_url": "https://api.github.com/user",
            "oauth_client_id": "x",
            "oauth_client_secret": "y",
            "username_claim": "login",
            "oauth_subject_claim": setting,
            "allow_all": True,
        },
    )
    authenticator = OAuth2Authenticator(settings, None)  # type: ignore[arg-type]
    assert authenticator.subject(claims) == ("https://github.com", expected)
    with pytest.raises(Forbidden, match="no stable id"):
        authenticator.subject({"login": "kate", "id": True, "sub": ""})


def test_a_name_binds_once(db: Any) -> None:
    users = UserService(db)
    users.create_many(["kate"])
    users.bind_provider("kate", "https://id", "one")
    users.bind_provider("kate", "https://id", "one")
    for other in (("https://id", "two"), ("https://other-id", "one")):
        with pytest.raises(Forbidden, match="belongs to another account"):
            users.bind_provider("kate", *other)
