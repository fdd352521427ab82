"""Fixtures for all tests.

- ``clean_env``: no hub settings from the outer environment (``FLASKHUB_*``,
  ``CONFIGPROXY_AUTH_TOKEN``) and no ``./flaskhub.toml``: the working directory
  is the test's tmp_path, which it returns.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if name.startswith("FLASKHUB_") or name == "CONFIGPROXY_AUTH_TOKEN":
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path
