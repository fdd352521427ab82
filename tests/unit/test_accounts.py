"""Servers as system accounts (app/spawners/accounts.py, LocalProcessSpawner as root).

The tests past the naming table create real accounts with useradd (CI runs as
root) under a prefix of their own, and delete them afterwards.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import re
import secrets
import signal
import struct
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.test import TestResponse

from app.config import load
from app.spawners import accounts
from app.spawners.base import SpawnerError
from app.spawners.local import LocalProcessSpawner
from app.users import get_users
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


def test_the_default_template_never_names_an_existing_account() -> None:
    assert load(environ={}).system_user_template == "flaskhub-{username}"


@pytest.mark.parametrize(
    ("template", "owner"),
    [
        ("flaskhub-{username}", "alice.smith"),  # the review's case
        ("flaskhub-{username}", "alice@example.org"),
        ("flaskhub-{username}", "x" * 40),  # cut, then hashed
        ("{username}", "1password"),  # 'u' in front, then hashed
        ("{username}", "zoë"),
    ],
)
def test_no_name_fills_the_template_to_another_users_hashed_name(template: str, owner: str) -> None:
    hashed = accounts.account_name(template, owner)
    prefix = template.split("{", 1)[0]
    squatter = hashed.removeprefix(prefix)
    assert accounts.account_name(template, squatter) != hashed


def test_a_hashed_name_cannot_be_found_by_trying_names() -> None:
    # With 24 bits of hash, 2.9 million tries (6 s) found this name for the victim's account.
    victim = accounts.account_name("flaskhub-{username}", "firstname.lastname@example.org")
    assert accounts.account_name("flaskhub-{username}", "firstname.lastna2ba933") != victim
    # Now 65 bits: 2**64 tries on average.
    assert re.fullmatch(r"flaskhub-firstname-[a-z2-7]{13}", victim)


@pytest.mark.parametrize(
    "username", ["ann-123456", "bob-cafe12", "x-000000", "bob-international", "j-abcdefghijklm"]
)
def test_a_name_that_looks_hashed_is_hashed(username: str) -> None:
    name = accounts.account_name("flaskhub-{username}", username)
    assert name != f"flaskhub-{username}"
    assert re.fullmatch(r"flaskhub-[a-z0-9-]+-[a-z2-7]{13}", name)
    assert accounts.ACCOUNT_NAME_RE.fullmatch(name) and len(name) <= accounts.ACCOUNT_NAME_MAX


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("UID_MIN\t\t\t 500\nUID_MAX\t\t 2000\n", (500, 2000)),
        ("# UID_MIN 5\nUID_MAX 3000\n", (1000, 3000)),
        ("UID_MIN lots\n", (1000, 60000)),
        ("", (1000, 60000)),
    ],
)
def test_the_uid_range_comes_from_login_defs(
    tmp_path: Path, text: str, expected: tuple[int, int]
) -> None:
    path = tmp_path / "login.defs"
    path.write_text(text)
    assert accounts.uid_range(path) == expected
    assert accounts.uid_range(tmp_path / "missing") == (1000, 60000)


# -- real accounts (root only) -------------------------------------------------

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="creating system accounts needs root")


@pytest.fixture
def prefix() -> Iterator[str]:
    """A template prefix of this test's own; its accounts are deleted afterwards."""
    value = f"fht{secrets.token_hex(2)}-"
    yield value
    for entry in pwd.getpwall():
        # Never a uid-0 account's processes: they would be root's, this test's own included.
        if entry.pw_name.startswith(value) and entry.pw_uid != 0:
            subprocess.run(["pkill", "-KILL", "-u", entry.pw_name], check=False)
            subprocess.run(["userdel", "--remove", entry.pw_name], check=False, capture_output=True)
    for group in grp.getgrall():
        if group.gr_name.startswith(value):
            subprocess.run(["groupdel", group.gr_name], check=False, capture_output=True)


@pytest.fixture
def add_account(prefix: str) -> Callable[..., pwd.struct_passwd]:
    """add_account(name, *useradd_options): a real account named prefix + name."""

    def _add(name: str, *options: str) -> pwd.struct_passwd:
        subprocess.run(["useradd", *options, prefix + name], check=True, capture_output=True)
        entry = pwd.getpwnam(prefix + name)
        if "--create-home" in options:
            # Without HOME_MODE in login.defs useradd makes 0755 homes, which the hub refuses.
            Path(entry.pw_dir).chmod(0o700)
        return entry

    return _add


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
        spawner.stop(now=True)  # ended: removes its CPU group


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
    message = str(failure.value)
    assert f"System account '{prefix}frank' was made for another FlaskHub user" in message
    # Both remedies, the one that keeps the files first.
    assert f"flaskhub user bind-account frank {prefix}frank" in message
    assert f"userdel --remove {prefix}frank" in message


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


# -- which existing accounts may run servers (issue 21: 4, 9, 11) ----------------


@as_root
@pytest.mark.process
@pytest.mark.parametrize(
    "name", ["daemon", "sync", "games", "man", "www-data", "_apt", "nobody", "postgres", "openldap"]
)
def test_the_machines_own_accounts_never_run_a_server(make_spawner: MakeSpawner, name: str) -> None:
    if accounts._by_name(name) is None:
        pytest.skip(f"no account {name} here")
    spawner = make_spawner(name, system_user_template="{username}", create_system_users=False)
    with pytest.raises(SpawnerError) as failure:
        assert spawner.account is None  # never reached: only looking it up, nothing runs
    message = str(failure.value)
    assert f"System account {name!r}" in message
    assert f"system_users_allowed = [{name!r}]" in message.replace('"', "'")


@as_root
@pytest.mark.process
@pytest.mark.parametrize(
    ("options", "why"),
    [
        (["--system", "--shell", "/bin/bash"], "below UID_MIN"),
        (["--uid", "{above}", "--shell", "/bin/bash"], "above UID_MAX"),
        (["--shell", "/usr/sbin/nologin"], "no login shell"),
        (["--shell", "/bin/false"], "no login shell"),
        (["--shell", "/bin/sync"], "no login shell"),
    ],
)
def test_a_service_account_runs_servers_only_when_listed(
    make_spawner: MakeSpawner,
    add_account: Callable[..., pwd.struct_passwd],
    prefix: str,
    options: list[str],
    why: str,
) -> None:
    above = next(u for u in range(60001, 65000) if not _uid_taken(u))
    entry = add_account("svc", "--create-home", *(o.format(above=above) for o in options))
    refused = make_spawner("svc", create_system_users=False)
    with pytest.raises(SpawnerError) as failure:
        refused.start()
    assert why in str(failure.value)
    assert refused.pid is None
    listed = make_spawner("svc", create_system_users=False, system_users_allowed=[prefix + "svc"])
    listed.start()
    assert whoami(listed)["uid"] == entry.pw_uid


def _uid_taken(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True


@as_root
@pytest.mark.process
def test_root_is_refused_even_when_listed(make_spawner: MakeSpawner) -> None:
    spawner = make_spawner(
        "root",
        system_user_template="{username}",
        create_system_users=False,
        system_users_allowed=["root"],
    )
    with pytest.raises(SpawnerError, match="never runs a server as root"):
        spawner.start()
    assert spawner.pid is None


@pytest.mark.parametrize(("uid", "gid"), [(0, 1001), (1001, 0)])
def test_uid_or_gid_0_under_another_name_is_refused_even_when_listed(uid: int, gid: int) -> None:
    # A struct, not a real account: a uid-0 account would share root's processes.
    toor = pwd.struct_passwd(("toor", "x", uid, gid, "", "/home/toor", "/bin/bash"))
    with pytest.raises(SpawnerError, match="never runs a server as root"):
        accounts.check_usable(toor, allowed=["toor"])


@as_root
@pytest.mark.process
def test_a_user_named_like_a_hashed_account_cannot_take_it(
    make_spawner: MakeSpawner, prefix: str
) -> None:
    hashed = accounts.account_name(prefix + "{username}", "alice.smith")
    squatter = make_spawner(hashed.removeprefix(prefix))  # "alice-smith-…"
    squatter.start()
    whoami(squatter)
    alice = make_spawner("alice.smith")
    alice.start()
    assert whoami(alice)["uid"] == pwd.getpwnam(hashed).pw_uid != whoami(squatter)["uid"]


@as_root
@pytest.mark.process
@pytest.mark.parametrize("mode", [0o755, 0o750, 0o711, 0o701, 0o704, 0o702, 0o770])
def test_a_home_other_accounts_can_enter_is_refused_with_the_chmod(
    make_spawner: MakeSpawner,
    add_account: Callable[..., pwd.struct_passwd],
    prefix: str,
    mode: int,
) -> None:
    # The group of the home has another member: bob.
    subprocess.run(["groupadd", prefix + "team"], check=True)
    kim = add_account("kim", "--create-home", "--gid", prefix + "team")
    add_account("bob", "--groups", prefix + "team")
    home = Path(kim.pw_dir)
    home.chmod(mode)
    spawner = make_spawner("kim", create_system_users=False)
    with pytest.raises(SpawnerError) as failure:
        spawner.start()
    assert f"can be entered by other accounts: chmod 700 {home}" in str(failure.value)
    assert spawner.pid is None
    subprocess.run(["chmod", "700", str(home)], check=True)  # what the message says
    spawner.start()
    assert whoami(spawner)["uid"] == kim.pw_uid


@as_root
@pytest.mark.process
def test_a_home_open_only_to_the_accounts_own_group_is_fine(
    make_spawner: MakeSpawner, add_account: Callable[..., pwd.struct_passwd]
) -> None:
    kim = add_account("kim", "--create-home")  # a group of its own (USERGROUPS_ENAB)
    Path(kim.pw_dir).chmod(0o750)
    spawner = make_spawner("kim", create_system_users=False)
    spawner.start()
    assert whoami(spawner)["uid"] == kim.pw_uid


@as_root
@pytest.mark.process
def test_a_symlinked_or_someone_elses_home_is_refused(
    make_spawner: MakeSpawner, add_account: Callable[..., pwd.struct_passwd], prefix: str
) -> None:
    other = add_account("other", "--create-home")
    add_account("borrow", "--no-create-home", "--home-dir", other.pw_dir)
    link = add_account("link", "--create-home")
    real = Path(link.pw_dir + "-real")
    Path(link.pw_dir).rename(real)
    Path(link.pw_dir).symlink_to(real)
    try:
        for name in ("borrow", "link"):
            spawner = make_spawner(name, create_system_users=False)
            with pytest.raises(SpawnerError, match="does not belong to it"):
                spawner.start()
    finally:
        Path(link.pw_dir).unlink()
        subprocess.run(["rm", "-rf", str(real)], check=True)


def _acl(*entries: tuple[int, int, int]) -> bytes:
    """An access ACL as the kernel stores it: (tag, permissions, id) entries, in order."""
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in entries)


@as_root
@pytest.mark.process
def test_a_home_an_acl_opens_to_another_account_is_refused(
    make_spawner: MakeSpawner, add_account: Callable[..., pwd.struct_passwd]
) -> None:
    kim = add_account("kim", "--create-home")  # a group of its own, mode 0700
    bob = add_account("bob")
    home = Path(kim.pw_dir)
    anyone = 0xFFFFFFFF
    # setfacl -m u:bob:rx: the mode's group bits become the ACL's mask (0750).
    os.setxattr(
        home,
        "system.posix_acl_access",
        _acl(
            (0x01, 7, anyone),
            (0x02, 5, bob.pw_uid),
            (0x04, 0, anyone),
            (0x10, 5, anyone),
            (0x20, 0, anyone),
        ),
    )
    spawner = make_spawner("kim", create_system_users=False)
    with pytest.raises(SpawnerError) as failure:
        spawner.start()
    assert f"(mode 0750 with an ACL) can be entered by other accounts: chmod 700 {home}" in str(
        failure.value
    )
    home.chmod(0o700)  # the mask is then empty: bob's entry grants nothing
    spawner.start()
    assert whoami(spawner)["uid"] == kim.pw_uid


# -- binding a kept account to a user (issue 21: after the database is replaced) ----

BIND_URL = "/hub/api/users/{}/system-account"


@pytest.fixture
def bind_app(make_app: Callable[..., Flask], prefix: str) -> Flask:
    """A hub whose servers run as accounts named prefix + name."""
    return make_app(spawner="local", system_user_template=prefix + "{username}")


def bind(app: Flask, token: str, user: str, body: object) -> TestResponse:
    """POST the user's system account as the token's owner."""
    return app.test_client().post(
        BIND_URL.format(user), json=body, headers={"Authorization": f"token {token}"}
    )


@as_root
@pytest.mark.process
def test_an_admin_gives_a_returning_user_their_kept_account(
    bind_app: Flask,
    make_token: Callable[..., str],
    make_spawner: MakeSpawner,
    add_account: Callable[..., pwd.struct_passwd],
    prefix: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    admin = make_token(bind_app, "admin", admin=True)
    alice = get_users(bind_app).get_or_create("alice")
    # Made by the hub before its database was replaced: marked with another stable id.
    kept = add_account("alice", "--create-home", "--comment", accounts.marker("id-old-hub"))
    (Path(kept.pw_dir) / "notes.txt").write_text("kept")
    with pytest.raises(SpawnerError, match=f"bind-account alice {prefix}alice"):
        make_spawner("alice", storage_id=alice.storage_id).start()

    response = bind(bind_app, admin, "alice", {"account": f"{prefix}alice"})
    assert response.status_code == 200, response.json
    assert response.json == {
        "name": "alice",
        "system_account": f"{prefix}alice",
        "uid": kept.pw_uid,
        "home": kept.pw_dir,
        "changed": True,
    }
    assert pwd.getpwnam(f"{prefix}alice").pw_gecos == accounts.marker(alice.storage_id)
    assert f"admin bound system account {prefix}alice" in caplog.text
    spawner = make_spawner("alice", storage_id=alice.storage_id)
    spawner.start()
    assert whoami(spawner)["uid"] == kept.pw_uid
    assert (spawner.home / "notes.txt").read_text() == "kept"
    # Again: nothing to change.
    assert bind(bind_app, admin, "alice", {"account": f"{prefix}alice"}).json["changed"] is False


@as_root
@pytest.mark.process
@pytest.mark.parametrize(
    ("user", "body", "status", "message"),
    [
        ("zed", {"account": "{prefix}kept"}, 404, "No such user: zed"),
        ("alice", {"account": "daemon"}, 400, "'daemon' is not an ordinary person's"),
        ("alice", {"account": "nobody"}, 400, "'nobody' is not an ordinary person's"),
        ("alice", {"account": "root"}, 400, "never runs a server as root"),
        ("alice", {"account": "{prefix}nosuch"}, 400, "No system account"),
        ("alice", {"account": "a\x00b"}, 400, "No system account"),
        ("alice", {"account": "{prefix}own"}, 400, "was not made by FlaskHub"),
        ("alice", {"account": "{prefix}svc"}, 400, "below UID_MIN"),
        ("alice", {"account": 5}, 400, 'Send {"account": '),
        ("alice", ["{prefix}kept"], 400, 'Send {"account": '),
        ("alice", {"account": "{prefix}carol"}, 409, "belongs to user carol"),
        ("bob", {"account": "{prefix}kept"}, 409, "bob already has system account"),
    ],
)
def test_only_a_kept_account_of_no_other_user_is_bound(
    bind_app: Flask,
    make_token: Callable[..., str],
    add_account: Callable[..., pwd.struct_passwd],
    prefix: str,
    user: str,
    body: Any,
    status: int,
    message: str,
) -> None:
    admin = make_token(bind_app, "admin", admin=True)
    users = get_users(bind_app)
    alice, bob, carol = (users.get_or_create(n) for n in ("alice", "bob", "carol"))
    add_account("kept", "--comment", accounts.marker("id-old-hub"))
    add_account("own")  # the operator's own, not the hub's
    add_account("svc", "--system", "--shell", "/bin/bash", "--comment", accounts.marker("x"))
    add_account("carol", "--comment", accounts.marker(carol.storage_id))
    add_account("bob", "--comment", accounts.marker(bob.storage_id))
    body = json.loads(json.dumps(body).replace("{prefix}", prefix))
    response = bind(bind_app, admin, user, body)
    assert (response.status_code, response.json["status"]) == (status, status)
    assert message in response.json["message"]
    assert pwd.getpwnam(f"{prefix}kept").pw_gecos == accounts.marker("id-old-hub")


@as_root
@pytest.mark.process
def test_only_admins_bind_accounts(
    bind_app: Flask,
    make_token: Callable[..., str],
    add_account: Callable[..., pwd.struct_passwd],
    prefix: str,
) -> None:
    get_users(bind_app).get_or_create("alice")
    add_account("kept", "--comment", accounts.marker("id-old-hub"))
    for name, scopes in (("bob", ()), ("alice", ()), ("carl", ("admin:users", "admin:servers"))):
        token = make_token(bind_app, name, scopes=scopes)
        for user in ("alice", "nobody-here"):
            response = bind(bind_app, token, user, {"account": f"{prefix}kept"})
            assert response.status_code == 403, (name, user)
    anonymous = bind_app.test_client().post(BIND_URL.format("alice"), json={"account": "x"})
    assert anonymous.status_code == 403
    assert pwd.getpwnam(f"{prefix}kept").pw_gecos == accounts.marker("id-old-hub")


def test_binding_needs_servers_that_run_as_accounts(
    make_app: Callable[..., Flask], make_token: Callable[..., str]
) -> None:
    app = make_app()  # spawner = "simple": every server as the hub's own account
    get_users(app).get_or_create("alice")
    response = bind(app, make_token(app, "admin", admin=True), "alice", {"account": "x"})
    assert response.status_code == 400
    assert "do not run as system accounts" in response.json["message"]


@as_root
@pytest.mark.process
@pytest.mark.parametrize("group", ["sudo", "docker", "adm", "shadow", "disk"])
def test_an_account_in_a_group_that_can_act_as_root_runs_servers_only_when_listed(
    make_spawner: MakeSpawner,
    add_account: Callable[..., pwd.struct_passwd],
    prefix: str,
    group: str,
) -> None:
    try:
        grp.getgrnam(group)
    except KeyError:
        pytest.skip(f"no group {group} here")
    entry = add_account("ops", "--create-home", "--groups", group)  # uid and shell: a person's
    refused = make_spawner("ops", create_system_users=False)
    with pytest.raises(SpawnerError) as failure:
        refused.start()
    assert f"it is in group {group}" in str(failure.value)
    assert f'system_users_allowed = ["{prefix}ops"]' in str(failure.value)
    listed = make_spawner("ops", create_system_users=False, system_users_allowed=[prefix + "ops"])
    listed.start()
    assert whoami(listed)["uid"] == entry.pw_uid


@as_root
@pytest.mark.process
def test_an_account_in_roots_group_is_refused_even_when_listed(
    make_spawner: MakeSpawner, add_account: Callable[..., pwd.struct_passwd], prefix: str
) -> None:
    add_account("wheel", "--create-home", "--groups", "root")
    spawner = make_spawner(
        "wheel", create_system_users=False, system_users_allowed=[prefix + "wheel"]
    )
    with pytest.raises(SpawnerError, match="never runs a server as root"):
        spawner.start()
    assert spawner.pid is None
