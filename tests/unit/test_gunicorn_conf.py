"""gunicorn's arbiter (what `flaskhub run` becomes) stays small and leaves its workers a
clean start: loading its settings and hooks imports no web framework, database or HTTP
library (a worker monkey-patches after fork, and ssl must not be in use by then)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO

HEAVY = ("flask", "sqlalchemy", "requests", "ssl", "gevent", "docker", "authlib", "ldap3")


@pytest.mark.process
@pytest.mark.parametrize(
    "settings",
    [{}, {"FLASKHUB_LOAD_ROLES": '[{"name": "readers", "scopes": ["list:users"]}]'}],
    ids=["defaults", "with-roles"],
)
def test_the_arbiter_loads_nothing_heavy(tmp_path: Path, settings: dict[str, str]) -> None:
    code = (
        "import json, sys; import app.gunicorn_conf; "
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    env = {"FLASKHUB_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin", **settings}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []


@pytest.mark.process
def test_a_worker_loads_only_what_its_settings_use(tmp_path: Path) -> None:
    # A worker's memory is mostly what it imports: password hashing, containers and
    # identity providers load when a setting or the first login needs them.
    optional = ("argon2", "docker", "authlib", "ldap3", "yaml")
    code = (
        "import json, sys; from app import create_app; create_app(); "
        f"print(json.dumps([m for m in {optional!r} if m in sys.modules]))"
    )
    env = {"FLASKHUB_DATA_DIR": str(tmp_path / "data"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []


@pytest.mark.process
@pytest.mark.parametrize(
    ("level", "accesslog"), [("DEBUG", "-"), ("INFO", "-"), ("WARNING", None), ("ERROR", None)]
)
def test_a_line_per_request_is_logged_at_info_and_debug_only(
    tmp_path: Path, level: str, accesslog: str | None
) -> None:
    code = "import json, app.gunicorn_conf as c; print(json.dumps(c.accesslog))"
    env = {"FLASKHUB_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin", "FLASKHUB_LOG_LEVEL": level}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == accesslog
