"""Fixtures for unit tests.

- ``make_app(**overrides)``: a hub app (``create_app``) on a migrated SQLite
  file in tmp_path; nothing listens on its proxy API port. (``clean_env`` is in
  tests/conftest.py.)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from app import create_app
from app.config import get_settings
from app.migrations import upgrade
from tests.helpers import free_port

# Modules that start processes in every test but are owned elsewhere: marked here
# until they say `pytestmark = pytest.mark.process` themselves.
PROCESS_MODULES = {Path(__file__).with_name("test_servers.py")}


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path in PROCESS_MODULES:
            item.add_marker(pytest.mark.process)


@pytest.fixture
def make_app(clean_env: Path) -> Callable[..., Flask]:
    def _make(**overrides: Any) -> Flask:
        app = create_app(
            {"data_dir": str(clean_env / "data"), "proxy_api_port": free_port(), **overrides}
        )
        upgrade(get_settings(app).db_url)
        return app

    return _make
