"""CORS on /hub/api: flask-cors with the operator's explicit origin list, our default headers."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from app.tokens import get_tokens
from app.users import get_users
from tests.helpers import header_values

DEFAULT_ALLOW_HEADERS = "accept, content-type, authorization"
ALLOWED = "https://app.example"
# Configured in mixed case, with a comma and spaces: names and origins match in any case.
ORIGINS = {"access-CONTROL-allow-origin": "https://app.example,  HTTPS://Other.Example:8443"}


def preflight(client: FlaskClient, origin: str, path: str = "/hub/api/users") -> TestResponse:
    """What a browser sends before a cross-origin GET with an Authorization header."""
    return client.options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )


def test_no_allow_origin_by_default(make_app: Callable[..., Flask]) -> None:
    client = make_app().test_client()
    response = preflight(client, ALLOWED)
    assert response.status_code == 200
    assert response.data == b""
    assert header_values(response, "Access-Control-Allow-Origin") == []
    assert header_values(response, "Access-Control-Allow-Credentials") == []
    assert header_values(response, "Access-Control-Allow-Headers") == [DEFAULT_ALLOW_HEADERS]
    get = client.get("/hub/api", headers={"Origin": ALLOWED})
    assert header_values(get, "Access-Control-Allow-Origin") == []


@pytest.mark.parametrize(
    ("origin", "path"),
    [
        (ALLOWED, "/hub/api/users"),
        ("HTTPS://APP.EXAMPLE", "/hub/api/users"),
        ("https://other.example:8443", "/hub/api/users/alice/server"),
        (ALLOWED, "/hub/api/no-such-thing"),
        (ALLOWED, "/hub/api"),
    ],
)
def test_preflight_from_a_configured_origin(
    make_app: Callable[..., Flask], origin: str, path: str
) -> None:
    response = preflight(make_app(headers=ORIGINS).test_client(), origin, path)
    assert response.status_code == 200
    assert response.data == b""
    assert header_values(response, "Access-Control-Allow-Origin") == [origin]
    assert header_values(response, "Access-Control-Allow-Credentials") == ["true"]
    assert "GET" in header_values(response, "Access-Control-Allow-Methods")[0].split(", ")
    assert header_values(response, "Access-Control-Allow-Headers") == [DEFAULT_ALLOW_HEADERS]
    assert "Origin" in header_values(response, "Vary")


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example",
        "http://app.example",  # another scheme is another origin
        "https://app.example.evil.example",  # a prefix is not a match
        "https://app.example:444",
        "null",
    ],
)
def test_preflight_from_another_origin_gets_no_allow_origin(
    make_app: Callable[..., Flask], origin: str
) -> None:
    response = preflight(make_app(headers=ORIGINS).test_client(), origin)
    assert response.status_code == 200
    assert header_values(response, "Access-Control-Allow-Origin") == []
    assert header_values(response, "Access-Control-Allow-Credentials") == []


def test_origins_are_literal_not_patterns(make_app: Callable[..., Flask]) -> None:
    """flask-cors reads a string with [ ] as a regex: "[::1]" would match "1" and not itself."""
    origin = "http://[::1]:8000"
    client = make_app(headers={"Access-Control-Allow-Origin": origin}).test_client()
    assert header_values(preflight(client, origin), "Access-Control-Allow-Origin") == [origin]
    assert header_values(preflight(client, "http://1:8000"), "Access-Control-Allow-Origin") == []


def test_cross_origin_call_with_a_token(make_app: Callable[..., Flask]) -> None:
    app = make_app(headers=ORIGINS)
    alice = get_users(app).get_or_create("alice")
    token, _row = get_tokens(app).create(alice.id, scopes=["inherit"])
    client = app.test_client()
    response = client.get(
        "/hub/api/user", headers={"Origin": ALLOWED, "Authorization": f"token {token}"}
    )
    assert response.status_code == 200
    assert response.json is not None and response.json["name"] == "alice"
    assert header_values(response, "Access-Control-Allow-Origin") == [ALLOWED]
    refused = client.get(
        "/hub/api/user", headers={"Origin": "https://evil.example", "Authorization": "token x"}
    )
    assert refused.status_code == 403
    assert header_values(refused, "Access-Control-Allow-Origin") == []


def test_wildcard_never_allows_credentials(make_app: Callable[..., Flask]) -> None:
    client = make_app(headers={"Access-Control-Allow-Origin": "*"}).test_client()
    for origin in (ALLOWED, "https://evil.example"):
        response = preflight(client, origin)
        assert response.status_code == 200
        assert header_values(response, "Access-Control-Allow-Origin") == ["*"]
        assert header_values(response, "Access-Control-Allow-Credentials") == []


def test_configured_allow_headers_replace_the_echo(make_app: Callable[..., Flask]) -> None:
    """flask-cors echoes the requested headers; the operator's value wins, sent once."""
    app = make_app(headers={**ORIGINS, "ACCESS-control-Allow-HEADERS": "x-custom"})
    response = preflight(app.test_client(), ALLOWED)
    assert header_values(response, "Access-Control-Allow-Headers") == ["x-custom"]
    assert header_values(response, "Access-Control-Allow-Origin") == [ALLOWED]


def test_configured_header_in_any_case_overrides_the_default_once(
    make_app: Callable[..., Flask],
) -> None:
    client = make_app(
        headers={"content-SECURITY-policy": "frame-ancestors *", "X-Extra": "1"}
    ).test_client()
    for path in ("/hub/api", "/hub/login", "/hub/api/no-such-thing"):
        response = client.get(path, headers={"Origin": ALLOWED})
        assert header_values(response, "Content-Security-Policy") == ["frame-ancestors *"], path
        assert header_values(response, "X-Extra") == ["1"], path
        assert header_values(response, "Access-Control-Allow-Headers") == [DEFAULT_ALLOW_HEADERS]


def test_unknown_api_paths(make_app: Callable[..., Flask]) -> None:
    client = make_app(headers=ORIGINS).test_client()
    assert client.options("/hub/api/no/such/thing").status_code == 200
    missing = client.get("/hub/api/no/such/thing", headers={"Origin": ALLOWED})
    assert missing.status_code == 404
    assert missing.json == {"status": 404, "message": missing.json["message"]}
    assert header_values(missing, "Access-Control-Allow-Origin") == [ALLOWED]


def test_pages_are_not_cors_resources(make_app: Callable[..., Flask]) -> None:
    client = make_app(headers=ORIGINS).test_client()
    response = client.options("/hub/login", headers={"Origin": "https://evil.example"})
    assert header_values(response, "Access-Control-Allow-Credentials") == []
