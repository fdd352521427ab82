"""Fixtures for unit tests.

- ``make_app(**overrides)``: a hub app (``create_app``) on a migrated SQLite
  file in tmp_path; nothing listens on its proxy API port. (``clean_env`` is in
  tests/conftest.py.)
- ``db``: a ``Database`` on a fresh SQLite file (``db_path``) migrated to the
  current schema, for testing domain services directly.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from app import create_app
from app.config import get_settings
from app.db import Database
from app.migrations import upgrade
from tests.helpers import free_port


@pytest.fixture
def make_app(clean_env: Path) -> Callable[..., Flask]:
    def _make(**overrides: Any) -> Flask:
        app = create_app(
            {"data_dir": str(clean_env / "data"), "proxy_api_port": free_port(), **overrides}
        )
        upgrade(get_settings(app).db_url)
        return app

    return _make


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "hub.sqlite"


@pytest.fixture
def db(db_path: Path) -> Database:
    """A Database on a fresh SQLite file with the schema of the migrations."""
    url = f"sqlite:///{db_path}"
    upgrade(url)
    return Database(url)
