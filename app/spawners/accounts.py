"""System accounts for user servers: which account runs a user's server, created on demand.

The hub, running as root, runs each server as its user's own account, named by
`system_user_template`. Accounts the hub creates carry a marker with the user's
stable id in their comment (GECOS) field: a renamed user keeps their account
(found by the marker), and a new user of a deleted user's name never gets the
old account or its files.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pwd
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from app.spawners.base import SpawnerError

log = logging.getLogger(__name__)

# Names every useradd accepts (shadow's strict rule); 32 bytes is the utmp limit.
ACCOUNT_NAME_RE = re.compile(r"[a-z_][a-z0-9_-]*")
ACCOUNT_NAME_MAX = 32
HASH_CHARS = 6
MARKER_PREFIX = "FlaskHub user "
COMMAND_TIMEOUT = 30.0


@dataclass(frozen=True)
class Account:
    """The system account a server runs as."""

    name: str
    uid: int
    gid: int
    groups: list[int]
    home: Path
    shell: str


def account_name(template: str, username: str) -> str:
    """The account for a username: the template filled in, made a valid account name.

    A name that is not valid as it stands (too long, other characters) is cut, its
    other characters replaced by '-', and a hash of the full name appended, so that
    two users never map to one account.
    """
    name = template.format(username=username)
    if ACCOUNT_NAME_RE.fullmatch(name) and len(name) <= ACCOUNT_NAME_MAX:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:HASH_CHARS]
    safe = re.sub(r"[^a-z0-9_-]", "-", name.lower())
    if not re.match(r"[a-z_]", safe):
        safe = "u" + safe
    return f"{safe[: ACCOUNT_NAME_MAX - HASH_CHARS - 1]}-{digest}"


def marker(storage_id: str) -> str:
    """The comment of an account the hub created for the user with this stable id."""
    return f"{MARKER_PREFIX}{storage_id}"


def _marker_of(entry: pwd.struct_passwd) -> str:
    return entry.pw_gecos.split(",", 1)[0]


def _by_marker(storage_id: str) -> pwd.struct_passwd | None:
    wanted = marker(storage_id)
    return next((e for e in pwd.getpwall() if _marker_of(e) == wanted), None)


def _by_name(name: str) -> pwd.struct_passwd | None:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        return None


def _run(cmd: list[str]) -> None:
    """Run an account command as root; its own message on failure."""
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise SpawnerError(f"Cannot run {cmd[0]}: {e}") from e
    if done.returncode != 0:
        raise SpawnerError(f"{' '.join(cmd[:1] + cmd[-1:])} failed: {done.stderr.strip()}")


def create(name: str, storage_id: str) -> pwd.struct_passwd:
    """Create the account (home 0700 under /home, bash) for the user with this id."""
    _run(
        [
            "useradd",
            "--create-home",
            "--shell",
            "/bin/bash",
            "--comment",
            marker(storage_id),
            "--key",
            "HOME_MODE=0700",
            name,
        ]
    )
    entry = pwd.getpwnam(name)
    os.chmod(entry.pw_dir, 0o700)
    log.info("Created system account %s (uid %s)", name, entry.pw_uid)
    return entry


def _create_once(name: str, storage_id: str) -> pwd.struct_passwd:
    """Create the account, or take it when a spawn running at the same moment (another
    named server, another worker) created it first."""
    try:
        return create(name, storage_id)
    except SpawnerError:
        entry = _by_marker(storage_id)
        if entry is None:
            raise
        return entry


def find(template: str, username: str, storage_id: str, create_missing: bool) -> Account:
    """The account that runs this user's servers; SpawnerError says why there is none."""
    entry = _by_marker(storage_id)
    if entry is None:
        name = account_name(template, username)
        entry = _by_name(name)
        if entry is not None and _marker_of(entry).startswith(MARKER_PREFIX):
            raise SpawnerError(
                f"System account {name!r} belongs to an earlier FlaskHub user named "
                f"{username!r}, whose files were kept (keep_user_files). Remove it "
                f"(userdel --remove {name}) to give {username!r} a new account."
            )
        if entry is None and not create_missing:
            raise SpawnerError(
                f"No system account {name!r} for user {username!r}: create it "
                f"(useradd --create-home {name}) or set create_system_users = true."
            )
        if entry is None:
            entry = _create_once(name, storage_id)
    if entry.pw_uid == 0 or entry.pw_gid == 0:
        raise SpawnerError(
            f"System account {entry.pw_name!r} is root's: FlaskHub never runs a server as root."
        )
    return Account(
        name=entry.pw_name,
        uid=entry.pw_uid,
        gid=entry.pw_gid,
        groups=os.getgrouplist(entry.pw_name, entry.pw_gid),
        home=Path(entry.pw_dir),
        shell=entry.pw_shell or "/bin/sh",
    )


def prepare_home(account: Account) -> None:
    """Make sure the home exists and belongs to the account (created 0700)."""
    home = account.home
    if not home.exists():
        home.mkdir(mode=0o700, parents=True)
        os.chown(home, account.uid, account.gid)
        return
    st = home.lstat()
    if home.is_symlink() or st.st_uid != account.uid:
        raise SpawnerError(
            f"The home {home} of system account {account.name!r} does not belong to it: "
            f"give it to the account (chown {account.name}: {home})."
        )
    if st.st_mode & 0o077:
        log.warning(
            "The home %s of %s can be read by other accounts (chmod 700)", home, account.name
        )


def remove(storage_id: str) -> str | None:
    """Delete the account the hub created for this user, with its home; its name, if any."""
    entry = _by_marker(storage_id)
    if entry is None:
        return None
    _run(["userdel", "--remove", entry.pw_name])
    return entry.pw_name
