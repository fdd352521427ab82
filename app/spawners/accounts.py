"""System accounts for user servers: which account runs a user's server, created on demand.

The hub, running as root, runs each server as its user's own account, named by
`system_user_template`. Accounts the hub creates carry a marker with the user's
stable id in their comment (GECOS) field: a renamed user keeps their account
(found by the marker), and a new user of a deleted user's name never gets the
old account or its files.

Only people's accounts run servers: never root, and never the machine's own
service accounts (a uid outside login.defs' UID_MIN..UID_MAX, no login shell) or
accounts in groups that can act as root, unless the operator lists them in
`system_users_allowed`. A home that other accounts can enter is refused too.
"""

from __future__ import annotations

import base64
import grp
import hashlib
import logging
import os
import pwd
import re
import shlex
import subprocess
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from app.spawners.base import SpawnerError

log = logging.getLogger(__name__)

# Names every useradd accepts (shadow's strict rule); 32 bytes is the utmp limit.
ACCOUNT_NAME_RE = re.compile(r"[a-z_][a-z0-9_-]*")
ACCOUNT_NAME_MAX = 32
# A hashed name ends in 13 characters of base32 (65 bits of SHA-256): finding another
# name with the same hash takes about 2**64 tries. (The 6 hex digits, 24 bits, of
# earlier versions took seconds.) Accounts made with the old names keep them.
HASH_CHARS = 13
# What a hashed name ends with, now or in earlier versions. A name that ends so is
# hashed too, even when valid: then no user's name fills the template to another
# user's hashed name.
HASHED_RE = re.compile(r".*-(?:[a-z2-7]{13}|[0-9a-f]{6})")
# Where useradd's range of people's uids is written, and its defaults when not.
LOGIN_DEFS = Path("/etc/login.defs")
UID_RANGE_DEFAULT = (1000, 60000)
SHELLS = Path("/etc/shells")
NO_LOGIN_SHELLS = ("nologin", "false")
# Groups whose members can act as root or read what only root should (logs, password
# hashes, raw disks): code a web login runs never gets them unless the operator says so.
PRIVILEGED_GROUPS = frozenset(
    {"sudo", "wheel", "admin", "adm", "shadow", "disk", "docker", "lxd", "libvirt"}
)
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

    A name that is not valid as it stands (too long, other characters), or that ends
    like a hashed name, is cut, its other characters replaced by '-', and a hash of the
    full name appended, so that two users never map to one account.
    """
    name = template.format(username=username)
    valid = ACCOUNT_NAME_RE.fullmatch(name) and len(name) <= ACCOUNT_NAME_MAX
    if valid and not HASHED_RE.fullmatch(name):
        return name
    digest = base64.b32encode(hashlib.sha256(name.encode()).digest()).decode().lower()
    digest = digest[:HASH_CHARS]
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


def uid_range(path: Path = LOGIN_DEFS) -> tuple[int, int]:
    """UID_MIN and UID_MAX of login.defs: the uids useradd gives people's accounts."""
    found: dict[str, int] = {}
    try:
        text = path.read_text()
    except OSError:
        text = ""
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] in ("UID_MIN", "UID_MAX") and words[1].isdigit():
            found[words[0]] = int(words[1])
    low, high = UID_RANGE_DEFAULT
    return found.get("UID_MIN", low), found.get("UID_MAX", high)


def is_login_shell(shell: str, shells: Path = SHELLS) -> bool:
    """Whether an account's shell lets it log in: listed in /etc/shells, never nologin
    or false."""
    shell = shell or "/bin/sh"  # passwd(5): an empty shell is /bin/sh
    if Path(shell).name in NO_LOGIN_SHELLS:
        return False
    try:
        lines = shells.read_text().splitlines()
    except OSError:
        return True  # no list to go by: only the names above say no
    return shell in {line.strip() for line in lines if not line.startswith("#")}


def _group_names(gids: list[int]) -> set[str]:
    """The names of the groups with these ids."""
    names = set()
    for gid in gids:
        try:
            names.add(grp.getgrgid(gid).gr_name)
        except KeyError:
            pass  # a gid with no group entry grants nothing by name
    return names


def _service_sign(entry: pwd.struct_passwd, gids: list[int]) -> str | None:
    """What marks an account as the machine's own (a service's, or one that can act as
    root), or None for a person's."""
    low, high = uid_range()
    if entry.pw_uid < low:
        return f"its uid {entry.pw_uid} is below UID_MIN {low} ({LOGIN_DEFS})"
    if entry.pw_uid > high:
        return f"its uid {entry.pw_uid} is above UID_MAX {high} ({LOGIN_DEFS})"
    if not is_login_shell(entry.pw_shell):
        return f"it has no login shell ({entry.pw_shell or '/bin/sh'}, see {SHELLS})"
    privileged = sorted(_group_names(gids) & PRIVILEGED_GROUPS)
    if privileged:
        return (
            f"it is in group {', '.join(privileged)}, which can act as root or read what "
            "only root should"
        )
    return None


def check_usable(entry: pwd.struct_passwd, allowed: Collection[str]) -> None:
    """Refuse root always, and the machine's own accounts unless `allowed` names them."""
    gids = os.getgrouplist(entry.pw_name, entry.pw_gid)
    if entry.pw_uid == 0 or 0 in gids:
        raise SpawnerError(
            f"System account {entry.pw_name!r} is root's, or in root's group: FlaskHub "
            "never runs a server as root."
        )
    if entry.pw_name in allowed:
        return
    sign = _service_sign(entry, gids)
    if sign is not None:
        raise SpawnerError(
            f"System account {entry.pw_name!r} is not an ordinary person's account: {sign}. "
            "FlaskHub runs no server as such an account unless the operator lists it: "
            f'system_users_allowed = ["{entry.pw_name}"]. To give each user an account of '
            'their own instead, keep a prefix in system_user_template ("flaskhub-{username}").'
        )


def find(
    template: str,
    username: str,
    storage_id: str,
    create_missing: bool,
    allowed: Collection[str] = (),
) -> Account:
    """The account that runs this user's servers; SpawnerError says why there is none.

    `allowed` names the machine's own accounts that may run servers all the same.
    """
    entry = _by_marker(storage_id)
    if entry is None:
        name = account_name(template, username)
        entry = _by_name(name)
        if entry is not None and owner_of(entry) is not None:
            raise SpawnerError(_made_for_another(name, username))
        if entry is None and not create_missing:
            raise SpawnerError(
                f"No system account {name!r} for user {username!r}: create it "
                f"(useradd --create-home --key HOME_MODE=0700 {name}) or set "
                "create_system_users = true."
            )
        if entry is None:
            entry = _create_once(name, storage_id)
    check_usable(entry, allowed)
    return Account(
        name=entry.pw_name,
        uid=entry.pw_uid,
        gid=entry.pw_gid,
        groups=os.getgrouplist(entry.pw_name, entry.pw_gid),
        home=Path(entry.pw_dir),
        shell=entry.pw_shell or "/bin/sh",
    )


def _made_for_another(name: str, username: str) -> str:
    """Why a user does not get the account of their name that the hub made for someone
    else, and the two ways on: keep its files for them, or remove it."""
    user = shlex.quote(username)
    return (
        f"System account {name!r} was made for another FlaskHub user: an earlier user "
        f"named {username!r} whose files were kept (keep_user_files), or {username!r} "
        "before the hub's database was lost or replaced. If it is theirs, an admin gives "
        f"it to them with its files: flaskhub user bind-account {user} {name} (or POST "
        f"/hub/api/users/{username}/system-account). Otherwise userdel --remove {name} "
        f"deletes it and its files, and {username!r} gets a new account."
    )


def prepare_home(account: Account) -> None:
    """Make sure the home exists (created 0700), belongs to the account, and is its alone."""
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
    why = _open_to_others(home, st, account.name)
    if why is not None:
        raise SpawnerError(
            f"The home {home} of system account {account.name!r} ({why}) can be entered "
            f"by other accounts: chmod 700 {shlex.quote(str(home))} makes it the "
            "account's alone, as FlaskHub makes the homes it creates."
        )


def _open_to_others(home: Path, st: os.stat_result, name: str) -> str | None:
    """Why other accounts can enter (or list, or write) a home, or None.

    Any permission for others counts; one for the group counts when an account other
    than this one is in the group, or when an ACL names other users or groups (the
    group bits are then the ACL's mask). `chmod 700` ends all three.
    """
    mode = f"mode {st.st_mode & 0o777:04o}"
    if st.st_mode & 0o007:
        return mode
    if not st.st_mode & 0o070:
        return None
    if _has_acl(home):
        return f"{mode} with an ACL"
    others = _group_members(st.st_gid) - {name}
    if others:
        return f"{mode}, and its group has other members: {', '.join(sorted(others))}"
    return None


def _has_acl(path: Path) -> bool:
    """Whether an access ACL beyond the mode bits is set on path."""
    try:
        return bool(os.getxattr(path, "system.posix_acl_access", follow_symlinks=False))
    except OSError:
        return False  # none, or a filesystem without ACLs


def _group_members(gid: int) -> set[str]:
    """The accounts in a group: its listed members and those for whom it is primary."""
    try:
        members = set(grp.getgrgid(gid).gr_mem)
    except KeyError:
        members = set()
    members.update(e.pw_name for e in pwd.getpwall() if e.pw_gid == gid)
    return members


def owner_of(entry: pwd.struct_passwd) -> str | None:
    """The stable id in the marker of an account the hub made, or None for any other."""
    mark = _marker_of(entry)
    return mark.removeprefix(MARKER_PREFIX) if mark.startswith(MARKER_PREFIX) else None


def bindable(name: str, allowed: Collection[str]) -> pwd.struct_passwd:
    """The kept account called name, if it may be given to a user; SpawnerError says
    why not."""
    try:
        entry = pwd.getpwnam(name)
    except (KeyError, ValueError):
        raise SpawnerError(f"No system account {name!r}.") from None
    check_usable(entry, allowed)
    if owner_of(entry) is None:
        raise SpawnerError(
            f"System account {name!r} was not made by FlaskHub (its comment does not start "
            f"with {MARKER_PREFIX!r}): only an account the hub made and kept can be bound. "
            "An account of the operator's own runs the servers of the user whose name "
            "system_user_template gives it."
        )
    return entry


def bound_to(storage_id: str) -> str | None:
    """The name of the account marked with this stable id, if any."""
    entry = _by_marker(storage_id)
    return entry.pw_name if entry is not None else None


def bind(name: str, storage_id: str) -> None:
    """Mark an account as the one of the user with this stable id (their files with it)."""
    _run(["usermod", "--comment", marker(storage_id), name])


def remove(storage_id: str) -> str | None:
    """Delete the account the hub created for this user, with its home; its name, if any."""
    entry = _by_marker(storage_id)
    if entry is None:
        return None
    _run(["userdel", "--remove", entry.pw_name])
    return entry.pw_name
