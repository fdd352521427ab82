"""Fixtures for unit tests.

- ``clean_env``: no hub settings from the outer environment (``FLASKHUB_*``,
  ``CONFIGPROXY_AUTH_TOKEN``) and no ``./flaskhub.toml``: the working directory
  is the test's tmp_path.
- ``make_app(**overrides)``: a hub app (``create_app``) on a migrated SQLite
  file in tmp_path; nothing listens on its proxy API port.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from app import create_app
from app.config import get_settings
from app.migrations import upgrade
from tests.helpers import free_port


@pytest.fixture
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if name.startswith("FLASKHUB_") or name == "CONFIGPROXY_AUTH_TOKEN":
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def make_app(clean_env: Path) -> Callable[..., Flask]:
    def _make(**overrides: Any) -> Flask:
        app = create_app(
            {"data_dir": str(clean_env / "data"), "proxy_api_port": free_port(), **overrides}
        )
        upgrade(get_settings(app).db_url)
        return app

    return _make
