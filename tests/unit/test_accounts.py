"""Servers as system accounts (app/spawners/accounts.py, LocalProcessSpawner as root).

The tests past the naming table create real accounts with useradd (CI runs as
root) under a prefix of their own, and delete them afterwards.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from app.config import load
from app.spawners import accounts
from app.spawners.base import SpawnerError
from app.spawners.local import LocalProcessSpawner
from tests.helpers import wait_for

# Debian's python3: every account may run it (the hub's .venv may live under /root).
SYSTEM_PYTHON = "/usr/bin/python3"
# Writes its uid, groups and environment to ./whoami.json, then sleeps.
WHOAMI = (
    "import json, os, time;"
    "json.dump({'uid': os.getuid(), 'gid': os.getgid(), 'env': dict(os.environ)},"
    " open('whoami.tmp', 'w'));"
    "os.rename('whoami.tmp', 'whoami.json');"
    "time.sleep(60)"
)


@pytest.mark.parametrize(
    ("template", "username", "expected"),
    [
        ("{username}", "alice", "alice"),
        ("flaskhub-{username}", "alice", "flaskhub-alice"),
        ("{username}", "a_b-c", "a_b-c"),
    ],
)
def test_a_valid_name_is_used_as_it_is(template: str, username: str, expected: str) -> None:
    assert accounts.account_name(template, username) == expected


@pytest.mark.parametrize(
    "username", ["alice.smith", "alice@example.org", "zoë", "1password", "x" * 40, "a+b"]
)
def test_other_names_become_valid_account_names(username: str) -> None:
    name = accounts.account_name("flaskhub-{username}", username)
    assert accounts.ACCOUNT_NAME_RE.fullmatch(name) and len(name) <= accounts.ACCOUNT_NAME_MAX
    assert name.startswith("flaskhub-")


def test_names_that_differ_only_in_replaced_characters_get_different_accounts() -> None:
    names = {accounts.account_name("{username}", n) for n in ("a.b", "a@b", "a+b", "a-b")}
    assert len(names) == 4
    assert accounts.account_name("{username}", "1abc")[0] == "u"


# -- real accounts (root only) -------------------------------------------------

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="creating system accounts needs root")


@pytest.fixture
def prefix() -> Iterator[str]:
    """A template prefix of this test's own; its accounts are deleted afterwards."""
    value = f"fht{secrets.token_hex(2)}-"
    yield value
    for entry in pwd.getpwall():
        if entry.pw_name.startswith(value):
            subprocess.run(["pkill", "-KILL", "-u", entry.pw_name], check=False)
            subprocess.run(["userdel", "--remove", entry.pw_name], check=False, capture_output=True)


MakeSpawner = Callable[..., LocalProcessSpawner]


@pytest.fixture
def make_spawner(tmp_path: Path, prefix: str) -> Iterator[MakeSpawner]:
    """make_spawner(user, storage_id=None, **settings): LocalProcessSpawner as root."""
    made: list[LocalProcessSpawner] = []

    def _make(user: str, storage_id: str | None = None, **overrides: Any) -> LocalProcessSpawner:
        values: dict[str, Any] = {
            "data_dir": str(tmp_path / "data"),
            "spawner_cmd": [SYSTEM_PYTHON, "-c", WHOAMI],
            "system_user_template": prefix + "{username}",
            "create_system_users": True,
        }
        settings = load(environ={}, overrides={**values, **overrides})
        spawner = LocalProcessSpawner(
            user_name=user,
            server_name="",
            service_prefix=f"/user/{user}/",
            settings=settings,
            storage_id=storage_id or f"id-{user}-{secrets.token_hex(4)}",
        )
        made.append(spawner)
        return spawner

    yield _make
    for spawner in made:
        if spawner.proc is not None and spawner.proc.poll() is None:
            os.killpg(spawner.proc.pid, signal.SIGKILL)
            spawner.proc.wait(timeout=5)


def whoami(spawner: LocalProcessSpawner) -> dict[str, Any]:
    path = spawner.home / "whoami.json"
    wait_for(path.exists)
    return json.loads(path.read_text())


@as_root
@pytest.mark.process
def test_each_server_runs_as_its_users_own_account(make_spawner: MakeSpawner, prefix: str) -> None:
    alice, bob = make_spawner("alice"), make_spawner("bob")
    alice.start()
    bob.start()
    seen = {s.user_name: whoami(s) for s in (alice, bob)}
    for spawner in (alice, bob):
        entry = pwd.getpwnam(prefix + spawner.user_name)
        assert seen[spawner.user_name]["uid"] == entry.pw_uid != 0
        assert seen[spawner.user_name]["gid"] == entry.pw_gid != 0
        env = seen[spawner.user_name]["env"]
        assert env["HOME"] == entry.pw_dir == str(spawner.home)
        assert env["USER"] == entry.pw_name
        home = spawner.home.stat()
        assert (home.st_uid, home.st_mode & 0o777) == (entry.pw_uid, 0o700)
        assert entry.pw_gecos == accounts.marker(spawner.storage_id)
    assert seen["alice"]["uid"] != seen["bob"]["uid"]
    # The log stays the hub's: the server writes to it through the descriptor it got.
    log_file = Path(alice.settings.data_dir) / "logs" / "alice.log"
    assert log_file.stat().st_uid == 0


@as_root
@pytest.mark.process
def test_a_missing_account_is_named_when_creation_is_off(
    make_spawner: MakeSpawner, prefix: str
) -> None:
    spawner = make_spawner("carol", create_system_users=False)
    with pytest.raises(SpawnerError) as failure:
        spawner.start()
    assert f"No system account '{prefix}carol' for user 'carol'" in str(failure.value)
    assert "create_system_users = true" in str(failure.value)
    assert spawner.pid is None


@as_root
@pytest.mark.process
def test_root_is_never_a_servers_account(make_spawner: MakeSpawner) -> None:
    spawner = make_spawner("root", system_user_template="{username}", create_system_users=False)
    with pytest.raises(SpawnerError, match="never runs a server as root"):
        spawner.start()
    assert spawner.pid is None


@as_root
@pytest.mark.process
def test_a_command_the_account_cannot_execute_says_so(
    make_spawner: MakeSpawner, tmp_path: Path, prefix: str
) -> None:
    # A program in a folder only root may enter, as a Python under /root would be.
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    program = private / "server"
    program.write_text("#!/bin/sh\nexec sleep 60\n")
    program.chmod(0o755)
    spawner = make_spawner("dave", spawner_cmd=[str(program)])
    with pytest.raises(SpawnerError) as failure:
        spawner.start()
    message = str(failure.value)
    assert f"System account '{prefix}dave' may not execute {program}" in message
    assert "README: Per-user accounts" in message


@as_root
@pytest.mark.process
def test_a_renamed_user_keeps_their_account(make_spawner: MakeSpawner, prefix: str) -> None:
    before = make_spawner("erin", storage_id="id-erin")
    account = before.account
    assert account is not None and account.name == f"{prefix}erin"
    (account.home / "notes.txt").write_text("kept")
    after = make_spawner("erin2", storage_id="id-erin")
    assert after.account == account
    assert (after.home / "notes.txt").read_text() == "kept"


@as_root
@pytest.mark.process
def test_a_new_user_of_a_kept_accounts_name_never_gets_it(
    make_spawner: MakeSpawner, prefix: str
) -> None:
    assert make_spawner("frank", storage_id="id-old-frank").account is not None
    newcomer = make_spawner("frank", storage_id="id-new-frank")
    with pytest.raises(SpawnerError) as failure:
        newcomer.start()
    assert f"System account '{prefix}frank' belongs to an earlier FlaskHub user" in str(
        failure.value
    )
    assert f"userdel --remove {prefix}frank" in str(failure.value)


@as_root
@pytest.mark.process
@pytest.mark.parametrize("keep", [True, False])
def test_delete_forever_keeps_or_removes_the_account(
    make_spawner: MakeSpawner, prefix: str, keep: bool
) -> None:
    spawner = make_spawner("gina", keep_user_files=keep)
    account = spawner.account
    assert account is not None
    spawner.delete_forever()
    assert (accounts._by_name(account.name) is not None) is keep
    assert account.home.exists() is keep


@as_root
@pytest.mark.process
def test_delete_forever_never_removes_an_account_the_hub_did_not_create(
    make_spawner: MakeSpawner, prefix: str
) -> None:
    subprocess.run(["useradd", "--create-home", f"{prefix}hal"], check=True)
    spawner = make_spawner("hal", keep_user_files=False, create_system_users=False)
    assert spawner.account is not None
    spawner.delete_forever()
    assert accounts._by_name(f"{prefix}hal") is not None


@as_root
@pytest.mark.process
def test_an_account_in_use_stays_and_deleting_the_user_goes_on(
    make_spawner: MakeSpawner, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    spawner = make_spawner("ivy", keep_user_files=False)
    spawner.start()
    whoami(spawner)
    spawner.delete_forever()  # userdel refuses while the account's process runs
    assert accounts._by_name(f"{prefix}ivy") is not None
    assert "Could not remove the account of deleted user ivy" in caplog.text


@as_root
@pytest.mark.process
def test_a_spawn_that_loses_the_race_to_create_the_account_takes_it(
    make_spawner: MakeSpawner, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = make_spawner("jo", storage_id="id-jo")
    # The other spawn creates the account between this one's lookup and its useradd.
    real_create = accounts.create
    monkeypatch.setattr(accounts, "_by_marker", lambda storage_id: None)

    def racing_create(name: str, storage_id: str) -> object:
        real_create(name, storage_id)  # the winner
        monkeypatch.undo()  # lookups see it from now on
        return real_create(name, storage_id)  # this spawn's useradd: "already exists"

    monkeypatch.setattr(accounts, "create", racing_create)
    account = first.account
    assert account is not None and account.name == f"{prefix}jo"
    assert pwd.getpwnam(f"{prefix}jo").pw_gecos == accounts.marker("id-jo")
