"""The OpenAPI description: it covers every API route, and the live hub keeps to it.

Schemathesis runs as its own process (its CLI) against a running hub, through
the proxy on 127.0.0.1, with the token of an admin *service*: a service comes
from the settings, so generated requests cannot demote or delete it midway.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from app import create_app
from tests.helpers import free_port
from tests.integration.conftest import Hub

pytestmark = pytest.mark.integration

SERVICE_TOKEN = "schemathesis-service-token"
SETTINGS = {
    "services": [{"name": "fuzzer", "api_token": SERVICE_TOKEN, "admin": True}],
    "allow_named_servers": True,
    "named_server_limit_per_user": 3,
}
# Re-pointing the proxy at a generated URL would take the hub's routes away; a
# shutdown would stop the hub under test (tests/integration/test_shutdown.py has it).
EXCLUDED_OPERATIONS = ("patch-proxy", "post-shutdown")
ST = str(Path(sys.executable).parent / "st")
SPEC = Path(__file__).resolve().parents[2] / "app" / "api" / "openapi.yaml"


def _routed(tmp_path: Path) -> set[tuple[str, str]]:
    """(OpenAPI path, method) of every route the hub serves under /hub/api."""
    app = create_app({"data_dir": str(tmp_path / "data"), "proxy_api_port": free_port()})
    found = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/hub/api"):
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule.removeprefix("/hub/api")) or "/"
        # …/servers/ is the default server: the empty {server_name}.
        path = re.sub(r"/servers/$", "/servers/{server_name}", path)
        methods = (rule.methods or set()) - {"HEAD", "OPTIONS"}
        found |= {(path, method.lower()) for method in methods}
    return found


def _documented(spec: dict) -> set[tuple[str, str]]:
    methods = {"get", "post", "put", "patch", "delete"}
    return {
        (path, method)
        for path, item in spec["paths"].items()
        for method in item
        if method in methods
    }


@pytest.mark.usefixtures("clean_env")
def test_every_api_route_is_documented_and_nothing_else(tmp_path: Path) -> None:
    import yaml

    spec = yaml.safe_load(SPEC.read_text())
    routed, documented = _routed(tmp_path), _documented(spec)
    assert routed - documented == set(), "routes missing from openapi.yaml"
    assert documented - routed == set(), "openapi.yaml describes routes that do not exist"
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method != "parameters":
                assert "default" in operation["responses"], f"{method} {path}: no error shape"


@pytest.fixture(scope="module")
def hub(hub_factory: Callable[..., Hub]) -> Hub:
    return hub_factory(**SETTINGS)


def test_the_description_is_served_as_json_without_auth(hub: Hub) -> None:
    response = requests.get(f"{hub.public_url}/hub/api/openapi.json", timeout=10)
    assert response.status_code == 200
    spec = response.json()
    assert spec["openapi"].startswith("3.")
    assert spec["info"]["version"] == "6.1.1"
    assert spec["servers"] == [{"url": "/hub/api"}]
    assert "/users/{name}/tokens/{token_id}" in spec["paths"]


def test_schemathesis_finds_no_server_errors_and_no_schema_violations(
    hub: Hub, tmp_path: Path
) -> None:
    command = [
        ST,
        "run",
        f"{hub.public_url}/hub/api/openapi.json",
        "--url",
        f"{hub.public_url}/hub/api",
        "--header",
        f"Authorization: token {SERVICE_TOKEN}",
        "--checks",
        "not_a_server_error,response_schema_conformance",
        "--max-examples",
        "15",
        "--seed",
        "20261125",
        "--generation-database",
        "none",
        "--request-timeout",
        "30",
        "--workers",
        "2",
        "--no-color",
        *(arg for op in EXCLUDED_OPERATIONS for arg in ("--exclude-operation-id", op)),
    ]
    result = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-8000:]
    assert re.search(r"\d+ generated, \d+ passed", output), output[-3000:]
    assert "Traceback" not in hub.log()
