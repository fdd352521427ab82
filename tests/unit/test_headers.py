"""app/headers.py: version, CORS and CSP headers on every response; operator overrides."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.helpers import header_values

DEFAULT_ALLOW_HEADERS = "accept, content-type, authorization"
PAGE_CSP = "frame-ancestors 'none'"
API_CSP = "frame-ancestors 'none'; default-src 'none'"

# (path, status, is an API response): pages, API, errors and redirects of both kinds.
RESPONSES = [
    ("/hub/login", 200, False),
    ("/hub/health", 200, False),
    ("/hub/no-such-page", 404, False),
    ("/", 302, False),
    ("/hub/api", 200, True),
    ("/hub/api/user", 403, True),
    ("/hub/api/no-such-thing", 404, True),
]
API_PATHS = ["/hub/api", "/hub/api/users", "/hub/api/users/alice/server", "/hub/api/info"]


@pytest.fixture
def make_client(make_app: Callable[..., Flask]) -> Callable[..., FlaskClient]:
    """make_client(**overrides): a test client of make_app(**overrides)."""
    return lambda **overrides: make_app(**overrides).test_client()


@pytest.fixture
def client(make_client: Callable[..., FlaskClient]) -> FlaskClient:
    return make_client()


@pytest.mark.parametrize(("path", "status", "api"), RESPONSES)
def test_default_headers_on_every_response(
    client: FlaskClient, path: str, status: int, api: bool
) -> None:
    response = client.get(path)
    assert response.status_code == status
    assert header_values(response, "X-JupyterHub-Version") == ["6.1.1"]
    assert header_values(response, "Access-Control-Allow-Headers") == [DEFAULT_ALLOW_HEADERS]
    assert header_values(response, "Content-Security-Policy") == [API_CSP if api else PAGE_CSP]
    assert header_values(response, "Access-Control-Allow-Origin") == []


def test_version_header_follows_the_api_version_setting(
    make_client: Callable[..., FlaskClient],
) -> None:
    client = make_client(api_version="5.3.0")
    for path, _, _ in RESPONSES:
        assert client.get(path).headers["X-JupyterHub-Version"] == "5.3.0", path


@pytest.mark.parametrize(
    ("configured", "name", "value"),
    [
        ({"access-control-allow-headers": "x"}, "Access-Control-Allow-Headers", "x"),
        ({"ACCESS-CONTROL-ALLOW-HEADERS": "x"}, "Access-Control-Allow-Headers", "x"),
        (
            {"content-security-policy": "frame-ancestors *"},
            "Content-Security-Policy",
            "frame-ancestors *",
        ),
        (
            {"Access-Control-Allow-Origin": "https://a.example"},
            "Access-Control-Allow-Origin",
            "https://a.example",
        ),
        ({"x-frame-options": "DENY"}, "X-Frame-Options", "DENY"),
    ],
)
def test_configured_headers_override_without_duplicates(
    make_client: Callable[..., FlaskClient], configured: dict[str, str], name: str, value: str
) -> None:
    client = make_client(headers=configured)
    for path, _, _ in RESPONSES:
        assert header_values(client.get(path), name) == [value], path


def test_configured_header_leaves_other_defaults(make_client: Callable[..., FlaskClient]) -> None:
    client = make_client(headers={"access-control-allow-headers": "x"})
    response = client.get("/hub/api")
    assert header_values(response, "Content-Security-Policy") == [API_CSP]
    assert header_values(response, "X-JupyterHub-Version") == ["6.1.1"]


@pytest.mark.parametrize("path", API_PATHS)
def test_options_on_api_paths(client: FlaskClient, path: str) -> None:
    response = client.options(path)
    assert response.status_code == 200
    assert response.data == b""
    assert header_values(response, "Access-Control-Allow-Headers") == [DEFAULT_ALLOW_HEADERS]
    assert header_values(response, "X-JupyterHub-Version") == ["6.1.1"]
