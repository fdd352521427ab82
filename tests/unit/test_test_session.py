"""The test session itself: SIGTERM tears the fixtures down (tests/sigterm.py).

Each test runs pytest on a small test file in a process of its own, with the plugin
as tests/conftest.py loads it, and signals that process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import wait_for

pytestmark = pytest.mark.process

REPO = Path(__file__).resolve().parents[2]

# A session fixture that notes its setup and teardown (or hangs in it), and a test
# that waits to be signalled.
SESSION = """
import time
from pathlib import Path

import pytest

HERE = Path(__file__).parent


@pytest.fixture(scope="session")
def made():
    (HERE / "made").touch()
    yield
    (HERE / "tearing").touch()
    if (HERE / "hang").exists():
        time.sleep(60)
    (HERE / "torn").touch()


def test_waits(made):
    (HERE / "running").touch()
    time.sleep(60)
"""


def run_session(folder: Path) -> subprocess.Popen[str]:
    """pytest on SESSION in folder, with the SIGTERM plugin; once its test runs."""
    (folder / "test_session.py").write_text(SESSION)
    session = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "tests.sigterm", "-p", "no:cacheprovider"],
        cwd=folder,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for(lambda: (folder / "running").exists() or session.poll() is not None, 30)
    except BaseException:
        session.kill()
        raise
    assert session.poll() is None, session.communicate()[0]
    return session


def test_sigterm_stops_the_session_and_tears_its_fixtures_down(tmp_path: Path) -> None:
    session = run_session(tmp_path)
    session.send_signal(signal.SIGTERM)
    output, _ = session.communicate(timeout=30)
    assert (tmp_path / "torn").exists(), output
    assert session.returncode == pytest.ExitCode.INTERRUPTED, output
    assert "SIGTERM" in output


def test_a_second_sigterm_ends_a_teardown_that_hangs(tmp_path: Path) -> None:
    (tmp_path / "hang").touch()
    session = run_session(tmp_path)
    session.send_signal(signal.SIGTERM)
    try:
        wait_for(lambda: (tmp_path / "tearing").exists(), 30)
    finally:
        session.send_signal(signal.SIGTERM)
    session.communicate(timeout=30)
    assert session.returncode == -signal.SIGTERM
    assert not (tmp_path / "torn").exists()
