"""authenticator = "oidc" and "oauth2": settings, and a provider that does not answer (no
process here; the flows run in tests/browser/test_provider_logins.py against a
real provider)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from app.config import ConfigError, load
from tests.helpers import free_port

OIDC = {
    "authenticator": "oidc",
    "oauth_issuer": "https://id.example.org",
    "oauth_client_id": "hub",
    "oauth_client_secret": "secret",
}


def test_oidc_without_allow_settings_does_not_start(clean_env: Path) -> None:
    with pytest.raises(ConfigError) as e:
        load(environ={}, overrides=OIDC)
    for name in ("allowed_users", "allowed_groups", "allow_all"):
        assert name in str(e.value)


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"oauth_issuer": ""}, "oauth_issuer"),
        ({"oauth_issuer": "http://id.example.org"}, "oauth_issuer"),
        ({"oauth_client_id": ""}, "oauth_client_id"),
        ({"oauth_client_secret": ""}, "oauth_client_secret"),
        ({"oauth_scopes": ["profile"]}, "oauth_scopes"),
        ({"oauth_scopes": [""]}, "oauth_scopes"),
        ({"username_claim": ""}, "username_claim"),
        ({"oauth_callback_url": "/hub/oauth_callback"}, "oauth_callback_url"),
    ],
)
def test_bad_oidc_settings_are_named(clean_env: Path, changes: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        load(environ={}, overrides={**OIDC, "allow_all": True, **changes})


OAUTH2 = {
    "authenticator": "oauth2",
    "oauth_authorize_url": "https://github.example/login/oauth/authorize",
    "oauth_token_url": "https://github.example/login/oauth/access_token",
    "oauth_userinfo_url": "https://api.github.example/user",
    "oauth_client_id": "hub",
    "oauth_client_secret": "secret",
    "oauth_scopes": ["read:user"],
    "username_claim": "login",
}


def test_oauth2_needs_no_openid_scope(clean_env: Path) -> None:
    assert load(environ={}, overrides={**OAUTH2, "allow_all": True}).oauth_scopes == ["read:user"]


def test_oauth2_without_allow_settings_does_not_start(clean_env: Path) -> None:
    with pytest.raises(ConfigError, match="allowed_groups"):
        load(environ={}, overrides=OAUTH2)


@pytest.mark.parametrize("name", ["oauth_authorize_url", "oauth_token_url", "oauth_userinfo_url"])
@pytest.mark.parametrize("value", ["", "http://github.example/x"])
def test_oauth2_urls_must_be_https(clean_env: Path, name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        load(environ={}, overrides={**OAUTH2, "allow_all": True, name: value})


@pytest.mark.parametrize("settings", [OIDC, OAUTH2])
def test_login_form_post_on_a_provider_hub_offers_the_provider(
    make_app: Callable[..., Flask], settings: dict[str, Any]
) -> None:
    client = make_app(**settings, allow_all=True).test_client()
    with client.session_transaction() as session:
        session["csrf"] = "x"
    response = client.post("/hub/login", data={"username": "a", "password": "b", "_xsrf": "x"})
    assert response.status_code == 403
    assert "use the sign-in button" in response.text
    assert 'id="provider-login"' in response.text


def test_provider_down_is_a_clear_error_page(make_app: Callable[..., Flask]) -> None:
    hub = make_app(**{**OIDC, "oauth_issuer": f"https://127.0.0.1:{free_port()}"}, allow_all=True)
    client = hub.test_client()
    assert 'id="provider-login"' in client.get("/hub/login").text
    response = client.get("/hub/oauth_login")
    assert response.status_code == 503
    assert "The identity provider cannot be reached" in response.text


def test_callback_without_a_login_started_is_refused(make_app: Callable[..., Flask]) -> None:
    hub = make_app(**OIDC, allow_all=True)
    response = hub.test_client().get("/hub/oauth_callback?code=x&state=y")
    assert response.status_code == 403
    assert "start again from the login page" in response.text


def test_form_hub_has_no_provider_routes(make_app: Callable[..., Flask]) -> None:
    assert make_app().test_client().get("/hub/oauth_login").status_code == 404


def test_discovery_is_fetched_again_after_its_ttl(
    make_app: Callable[..., Flask], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Moved endpoints are followed; a provider down at that moment keeps the old ones.
    (The fetch is replaced to inject both; the real one runs in tests/browser.)"""
    from app.auth import get_authenticator
    from app.auth.providers import oidc
    from app.outcomes import Unavailable

    authenticator = get_authenticator(make_app(**OIDC, allow_all=True))
    answers: list[dict[str, Any] | Exception] = [
        {"authorization_endpoint": "https://id.example.org/auth"},
        {"authorization_endpoint": "https://id.example.org/v2/auth"},
        Unavailable("down"),
    ]

    def discover() -> dict[str, Any]:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(authenticator, "_discover", discover)
    assert authenticator.endpoints()["authorization_endpoint"].endswith("/auth")
    assert authenticator.endpoints()["authorization_endpoint"].endswith("/auth")  # cached
    monkeypatch.setattr(oidc, "DISCOVERY_TTL", 0.0)
    authenticator._metadata_until = 0.0
    assert authenticator.endpoints()["authorization_endpoint"].endswith("/v2/auth")
    assert authenticator.endpoints()["authorization_endpoint"].endswith("/v2/auth")
    assert answers == []
