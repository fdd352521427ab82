"""docker-compose.yml stays valid and consistent with the settings table.

No Docker engine runs here; Debian's docker-compose validates the file.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from app.config import BY_NAME, ENV_PREFIX

REPO = Path(__file__).resolve().parents[2]
COMPOSE = shutil.which("docker-compose")

pytestmark = [
    pytest.mark.process,
    pytest.mark.skipif(
        COMPOSE is None and not os.environ.get("CI"), reason="docker-compose not installed"
    ),
]


def _config(**env: str) -> subprocess.CompletedProcess[str]:
    assert COMPOSE is not None, "docker-compose is needed in CI (./test installs it)"
    full = {k: v for k, v in os.environ.items() if k != "CONFIGPROXY_AUTH_TOKEN"} | env
    return subprocess.run(
        [COMPOSE, "config"], cwd=REPO, env=full, capture_output=True, text=True, timeout=60
    )


def test_compose_file_is_valid() -> None:
    result = _config(CONFIGPROXY_AUTH_TOKEN="secret-for-test")
    assert result.returncode == 0, result.stderr
    for service in ("db:", "hub:", "proxy:"):
        assert f"\n  {service}" in result.stdout


def test_compose_refuses_to_start_without_a_proxy_token() -> None:
    result = _config()
    assert result.returncode != 0
    assert "CONFIGPROXY_AUTH_TOKEN" in result.stderr


def test_compose_uses_only_known_settings() -> None:
    text = (REPO / "docker-compose.yml").read_text()
    keys = set(re.findall(rf"\b{ENV_PREFIX}([A-Z_]+):", text))
    assert keys, "the hub service is configured through FLASKHUB_* variables"
    unknown = {k for k in keys if k.lower() not in BY_NAME and k != "DB_PASSWORD"}
    assert not unknown


def test_compose_hub_uses_postgres_and_an_external_proxy() -> None:
    result = _config(CONFIGPROXY_AUTH_TOKEN="secret-for-test")
    assert "FLASKHUB_DB_URL: postgresql+psycopg://" in result.stdout
    assert re.search(r"FLASKHUB_PROXY_AUTO_START: ['\"]false", result.stdout)
    assert "pg_isready" in result.stdout
