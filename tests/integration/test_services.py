"""Services through the running system: a hub-managed service written with JupyterHub's
own HubOAuth (tests/whoami_service.py, run with .venv-jupyter's jupyterhub 5) is
started with JupyterHub's environment, routed at /services/whoami/, logs a browser
user in through the hub, is restarted after kill -9 and stopped with the hub; and
services created and deleted through the API.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.helpers import free_port, wait_for
from tests.integration.conftest import Hub, login, pid_alive

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
JUPYTER_PYTHON = ROOT / ".venv-jupyter" / "bin" / "python"
TOKEN = "whoami-service-token-0123456789abcdef"


@pytest.fixture(scope="module")
def port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def hub(hub_factory: Callable[..., Hub], port: int) -> Hub:
    whoami = {
        "name": "whoami",
        "api_token": TOKEN,
        "url": f"http://127.0.0.1:{port}",
        "command": [str(JUPYTER_PYTHON), str(ROOT / "tests" / "whoami_service.py")],
        "info": {"about": "who am I"},
    }
    # As JupyterHub: only users granted access:services for it may log in to a service.
    role = {
        "name": "whoami-users",
        "scopes": ["access:services!service=whoami"],
        "users": ["alice"],
    }
    return hub_factory(
        services=[whoami, {"name": "culler", "api_token": "culler-token"}], load_roles=[role]
    )


def service_env(hub: Hub) -> dict[str, Any]:
    """The managed service's pid and JUPYTERHUB_* environment, through the proxy."""
    response = requests.get(f"{hub.public_url}/services/whoami/env", timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def answers(hub: Hub) -> bool:
    try:
        return requests.get(f"{hub.public_url}/services/whoami/env", timeout=5).ok
    except requests.ConnectionError:
        return False


def test_a_managed_service_runs_with_jupyterhubs_environment(hub: Hub, port: int) -> None:
    wait_for(lambda: answers(hub), timeout=30)
    found = service_env(hub)
    access = '["access:services", "access:services!service=whoami"]'
    assert found["env"] == {
        "JUPYTERHUB_SERVICE_NAME": "whoami",
        "JUPYTERHUB_API_TOKEN": TOKEN,
        "JUPYTERHUB_API_URL": f"{hub.hub_url}/hub/api",
        "JUPYTERHUB_BASE_URL": "/",
        "JUPYTERHUB_HOST": "",
        "JUPYTERHUB_CLIENT_ID": "service-whoami",
        "JUPYTERHUB_OAUTH_CALLBACK_URL": "/services/whoami/oauth_callback",
        "JUPYTERHUB_OAUTH_SCOPES": access,
        "JUPYTERHUB_OAUTH_ACCESS_SCOPES": access,
        "JUPYTERHUB_OAUTH_CLIENT_ALLOWED_SCOPES": "[]",
        "JUPYTERHUB_PUBLIC_HUB_URL": f"{hub.public_url}/hub/",
        "JUPYTERHUB_SERVICE_URL": f"http://127.0.0.1:{port}",
        "JUPYTERHUB_SERVICE_PREFIX": "/services/whoami/",
        "JUPYTERHUB_PUBLIC_URL": f"{hub.public_url}/services/whoami/",
    }
    model = hub.api("GET", "/services/whoami").json()
    assert model == {
        "kind": "service",
        "name": "whoami",
        "admin": False,
        "roles": [],
        "url": f"http://127.0.0.1:{port}",
        "prefix": "/services/whoami/",
        "command": [str(JUPYTER_PYTHON), str(ROOT / "tests" / "whoami_service.py")],
        "pid": found["pid"],
        "info": {"about": "who am I"},
        "display": True,
    }
    route = hub.routes()["/services/whoami"]
    assert route["target"] == f"http://127.0.0.1:{port}"
    assert route["service"] == "whoami"
    # A service without a url is not routed and runs nothing.
    assert hub.api("GET", "/services/culler").json()["prefix"] == ""
    assert "/services/culler" not in hub.routes()


def test_a_browser_user_logs_in_to_the_service_through_the_hub(hub: Hub) -> None:
    wait_for(lambda: answers(hub), timeout=30)
    browser = login(hub, "alice")
    response = browser.get(f"{hub.public_url}/services/whoami/", timeout=30)
    assert response.status_code == 200, response.text
    # Through the hub's authorize endpoint and back to the service's callback.
    visited = [r.url for r in response.history]
    assert any("/hub/api/oauth2/authorize" in url for url in visited), visited
    assert any("/services/whoami/oauth_callback" in url for url in visited), visited
    me = response.json()
    assert me["kind"] == "user"
    assert me["name"] == "alice"
    assert "access:services!service=whoami" in me["scopes"]
    # The service's own login cookie holds now: no second trip to the hub.
    again = browser.get(f"{hub.public_url}/services/whoami/", timeout=30)
    assert again.json()["name"] == "alice" and not again.history


def test_a_stranger_is_sent_to_the_hubs_login_page(hub: Hub) -> None:
    wait_for(lambda: answers(hub), timeout=30)
    response = requests.get(f"{hub.public_url}/services/whoami/", timeout=30)
    assert response.url.startswith(f"{hub.public_url}/hub/login")


def test_a_user_without_access_to_the_service_is_refused_by_the_hub(hub: Hub) -> None:
    wait_for(lambda: answers(hub), timeout=30)
    response = login(hub, "carol").get(f"{hub.public_url}/services/whoami/", timeout=30)
    assert response.status_code == 403
    assert "/hub/api/oauth2/authorize" in response.url
    assert "access:services!service=whoami" in response.text


def test_a_killed_service_is_restarted(hub: Hub) -> None:
    wait_for(lambda: answers(hub), timeout=30)
    first = service_env(hub)["pid"]
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: answers(hub) and service_env(hub)["pid"] != first, timeout=30)
    assert hub.api("GET", "/services/whoami").json()["pid"] == service_env(hub)["pid"]
    assert not pid_alive(first)


# -- services created through the API -----------------------------------------------


def test_create_use_and_delete_a_service(hub: Hub) -> None:
    body = {"url": "http://127.0.0.1:9", "api_token": "dynamic-token-0123456789", "admin": False}
    created = hub.api("POST", "/services/dyn", json=body)
    assert created.status_code == 201, created.text
    assert created.json()["prefix"] == "/services/dyn/"
    assert created.json()["command"] == []
    assert "dyn" in hub.api("GET", "/services").json()
    assert hub.routes()["/services/dyn"]["target"] == "http://127.0.0.1:9"
    me = hub.api("GET", "/user", token=body["api_token"])
    assert me.status_code == 200 and me.json()["name"] == "dyn"
    assert hub.api("POST", "/services/dyn", json=body).status_code == 409
    assert hub.api("POST", "/services/whoami", json={"url": "http://x"}).status_code == 409
    deleted = hub.api("DELETE", "/services/dyn")
    assert deleted.status_code == 200, deleted.text
    assert "/services/dyn" not in hub.routes()
    assert hub.api("GET", "/user", token=body["api_token"]).status_code == 403
    assert hub.api("DELETE", "/services/dyn").status_code == 404
    assert hub.api("GET", "/services/dyn").status_code == 404


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"command": ["sleep", "1"]}, 400, "Can not create managed service"),
        ({"url": 3}, 400, "'url' of service 'bad' must be a string"),
        ({"colour": "red"}, 400, "colour"),
        ({"oauth_client_allowed_scopes": ["no-such-scope"]}, 400, "no-such-scope"),
        ({"oauth_client_id": "bad"}, 400, "must start with 'service-'"),
        ([], 400, "Invalid service data"),
    ],
)
def test_bad_service_bodies(hub: Hub, body: Any, status: int, says: str) -> None:
    response = hub.api("POST", "/services/bad", json=body)
    assert response.status_code == status, response.text
    assert says in response.json()["message"]


def test_who_may_create_and_delete_services(hub: Hub) -> None:
    assert hub.api("DELETE", "/services/whoami").status_code == 405
    user_token = hub.token("bob")
    assert (
        hub.api("POST", "/services/mine", user_token, json={"url": "http://x"}).status_code == 403
    )
    assert hub.api("DELETE", "/services/culler", user_token).status_code == 403


def test_the_managed_service_stops_with_the_hub(hub: Hub) -> None:
    wait_for(lambda: answers(hub), timeout=30)
    pid = service_env(hub)["pid"]
    hub.stop()
    assert not pid_alive(pid)
