"""Per-user origins: each user's host, CHP's host routes, the servers' environment."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask
from werkzeug.test import TestResponse

from app.config import ConfigError, load
from app.servers.names import (
    HASHED_LABEL_RE,
    host_label,
    route_spec,
    server_url,
    url_prefix,
)
from app.servers.spawning import spawner_env

HUB = "https://hub.example.org"


@pytest.mark.parametrize(
    ("name", "label"),
    [("alice", "alice"), ("bob-2", "bob-2"), ("7up", "7up")],
)
def test_a_name_that_is_a_dns_label_is_its_own_label(name: str, label: str) -> None:
    assert host_label(name) == label


@pytest.mark.parametrize(
    "name",
    ["alice.smith", "a_b", "x@example.org", "bob+1", "-x", "a--b", "x" * 64, "xn--abc", "élodie"],
)
def test_any_other_name_gets_a_hashed_label_no_plain_name_can_take(name: str) -> None:
    label = host_label(name)
    assert HASHED_LABEL_RE.fullmatch(label) and len(label) <= 63
    # The squatter's move: a user named as the label itself gets another label.
    assert host_label(label) != label


def test_labels_of_different_names_differ() -> None:
    names = ["alice.smith", "alice_smith", "alice-smith", "Alice.Smith".lower(), "alice@smith"]
    labels = {host_label(n) for n in names}
    assert len(labels) == len(set(names))


def test_path_mode_urls_and_routes_are_the_prefix() -> None:
    assert server_url("", "alice", "lab") == url_prefix("alice", "lab") == "/user/alice/lab/"
    assert route_spec("", "alice") == "/user/alice/"


def test_per_user_origins_urls_and_routes_name_the_users_host() -> None:
    assert server_url("http://localhost:8000", "alice") == "http://alice.localhost:8000/user/alice/"
    assert route_spec("http://localhost:8000", "alice", "x") == "/alice.localhost/user/alice/x/"
    label = host_label("a.b")
    assert server_url(HUB, "a.b") == f"https://{label}.hub.example.org/user/a.b/"


def test_a_server_logs_in_on_its_own_origin_and_sends_people_to_the_hubs() -> None:
    settings = load(environ={}, overrides={"subdomain_host": HUB})
    env = spawner_env(settings, "alice", "", "t0ken")
    assert env["JUPYTERHUB_HOST"] == HUB
    callback = "https://alice.hub.example.org/user/alice/oauth_callback"
    assert env["JUPYTERHUB_OAUTH_CALLBACK_URL"] == callback
    assert env["JUPYTERHUB_SERVICE_PREFIX"] == "/user/alice/"
    path_env = spawner_env(load(environ={}, overrides={}), "alice", "", "t0ken")
    assert path_env["JUPYTERHUB_HOST"] == ""
    assert path_env["JUPYTERHUB_OAUTH_CALLBACK_URL"] == "/user/alice/oauth_callback"


@pytest.mark.parametrize(
    "value",
    [
        *("hub.example.org", "ftp://hub.example.org", "https://hub.example.org/x", "http://:80"),
        # {port} once, in the port's place, and spelt so: else no origin.
        *("http://localhost:{port}{port}", "http://localhost:{PORT}", "http://localhost/{port}"),
    ],
)
def test_subdomain_host_must_be_an_origin(value: str) -> None:
    with pytest.raises(ConfigError, match="subdomain_host"):
        load(environ={}, overrides={"subdomain_host": value, "port": 8001})


def test_subdomain_host_s_port_field_is_the_public_port() -> None:
    # docker-compose.yml's default: a second stack on FLASKHUB_PORT=8001 sends people there.
    environ = {"FLASKHUB_SUBDOMAIN_HOST": "http://localhost:{port}", "FLASKHUB_PORT": "8001"}
    assert load(environ=environ).subdomain_host == "http://localhost:8001"
    assert load(environ={"FLASKHUB_SUBDOMAIN_HOST": HUB}).subdomain_host == HUB


@pytest.fixture
def origin_app(make_app: Callable[..., Flask]) -> Flask:
    return make_app(subdomain_host="http://localhost:8000")


@pytest.mark.parametrize("path", ["/hub/home", "/hub/login?next=%2Fhub%2Ftoken", "/user/alice/x"])
def test_the_hub_answers_on_a_users_origin_only_with_its_own(origin_app: Flask, path: str) -> None:
    """Never a page, a form or a cookie on an origin whose other paths a server controls."""
    client = origin_app.test_client()
    response = client.get(path, headers={"Host": "alice.localhost:8000"})
    assert response.status_code == 307
    assert response.headers["Location"] == f"http://localhost:8000{path}"
    assert "Set-Cookie" not in response.headers
    form = client.post("/hub/login", data={"username": "eve"}, headers={"Host": "x.localhost:8000"})
    assert form.status_code == 307 and form.headers["Location"].startswith("http://localhost:8000/")


def test_the_hub_answers_on_its_own_host_and_to_servers_on_its_port(origin_app: Flask) -> None:
    client = origin_app.test_client()
    assert client.get("/hub/login", headers={"Host": "localhost:8000"}).status_code == 200
    # A server's API calls reach the hub's port directly.
    assert client.get("/hub/api", headers={"Host": "127.0.0.1:8081"}).status_code == 200


def test_links_and_redirects_go_to_the_users_origin(
    origin_app: Flask, log_in: Callable[..., object]
) -> None:
    """user-redirect (nbgitpuller's links), /hub/user/<other>/ and a bare /user/<name>
    send the browser to the server on its user's origin, never to a path of the hub's."""
    client = origin_app.test_client()
    client.environ_base["HTTP_HOST"] = "localhost:8000"  # the hub's own host
    log_in(client, "alice")
    own = "http://alice.localhost:8000/user/alice/"
    moved = client.get("/hub/user-redirect/git-pull?repo=x")
    assert moved.headers["Location"] == own + "git-pull?repo=x"
    assert client.get("/hub/user/bob/lab").headers["Location"] == own + "lab"
    bare = client.get("/user/carol?x=1")
    assert bare.headers["Location"] == "http://carol.localhost:8000/user/carol/?x=1"


def test_over_https_the_login_cookie_is_the_hub_hosts_alone(
    make_app: Callable[..., Flask], log_in: Callable[..., TestResponse]
) -> None:
    """Cookie tossing: a server on alice.hub.example.org can set a cookie for the domain
    hub.example.org; a `__Host-` cookie it cannot set, and the hub reads no other."""
    app = make_app(subdomain_host="https://hub.example.org")
    client = app.test_client()
    client.environ_base.update({"HTTP_HOST": "hub.example.org", "wsgi.url_scheme": "https"})
    response = log_in(client, "alice")
    name = "__Host-flaskhub-session"
    cookie = next(c for c in response.headers.getlist("Set-Cookie") if c.startswith(name + "="))
    flags = {part.strip() for part in cookie.split(";")[1:]}
    assert {"Secure", "HttpOnly", "Path=/", "SameSite=Lax"} <= flags
    assert not any(flag.lower().startswith("domain=") for flag in flags)
    assert client.get("/hub/api/user").json["name"] == "alice"
    # The same login planted under the plain name (as a server could, Domain=hub...).
    value = cookie.split(";")[0].split("=", 1)[1]
    planted = app.test_client()
    planted.environ_base.update({"HTTP_HOST": "hub.example.org", "wsgi.url_scheme": "https"})
    assert (
        planted.get("/hub/api/user", headers={"Cookie": f"flaskhub-session={value}"}).status_code
        == 403
    )
