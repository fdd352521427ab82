"""One CPU group for every local user server: the hub and CHP come first.

A nice value weighs only among the processes of one group, and where the kernel
groups each session (sched_autogroup) or each service (systemd), 200 servers
starting at once are 200 groups against the hub's one. So local servers run in
a control group of their own, `<server_cgroup>`, weighted as one process at
`server_nice` (cgroup v1: `cpu.shares`; v2: `cpu.weight.nice`): together they
get the CPU the hub leaves, and never more than that share while the hub needs
it. Inside it each server has a group of its own (`user-<file stem>`, hashed
if long: never a name the kernel's own files have, such as `cgroup.procs`), so
servers share among themselves by server, not by process count. A server's processes
cannot leave: the groups belong to root.

Where the group lives: cgroup v1 allows processes beside groups, so it is a
child of the hub's own group. v2 does not, so it is a sibling of the hub's
group (a child of the root if the hub runs there). Where the hub may not make
it (not root, a read-only cgroupfs, a parent that delegates no CPU), it says so
once and servers run at their nice value alone.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

log = logging.getLogger(__name__)

# cpu.shares of the default nice 0, against which v1 weighs the servers' group.
V1_DEFAULT_SHARES = 1024
# A group's name is a file name: at most 255 bytes.
LONGEST_NAME = 200
_warned: set[str] = set()
_made: set[Path] = set()  # servers' groups this process made or weighted


@dataclass(frozen=True)
class Hierarchy:
    """Where this process's CPU controller is mounted, and its group in it."""

    mount: Path
    version: int  # 1 or 2
    own: PurePosixPath  # this process's group, from the mount's root

    def base(self, name: str) -> Path:
        """The servers' group of that name (see the module's text)."""
        parent = self.own if self.version == 1 or self.own == self.own.parent else self.own.parent
        return self.mount / parent.relative_to("/") / name


def find_hierarchy(mountinfo: str, cgroups: str, prefix: str = "") -> Hierarchy | None:
    """The CPU hierarchy of /proc/self/mountinfo and /proc/self/cgroup (their texts);
    prefix is put before each mount point (tests). None without a CPU controller."""
    v2 = None
    for line in mountinfo.splitlines():
        fields = line.split()
        if " - " not in line or len(fields) < 5:
            continue
        root, point = fields[3], fields[4]
        fstype, _source, options = line.split(" - ", 1)[1].split()[:3]
        if fstype == "cgroup" and "cpu" in options.split(","):
            own = _own_group(cgroups, lambda names: "cpu" in names.split(","))
            return _hierarchy(prefix + point, 1, root, own)
        if fstype == "cgroup2":
            v2 = (prefix + point, root)
    if v2 is None or "cpu" not in _read(Path(v2[0]) / "cgroup.controllers").split():
        return None
    return _hierarchy(v2[0], 2, v2[1], _own_group(cgroups, lambda names: names == ""))


def _own_group(cgroups: str, wanted: Callable[[str], bool]) -> str | None:
    """This process's group in the hierarchy whose controller list is wanted."""
    for line in cgroups.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3 and wanted(parts[1]):
            return parts[2]
    return None


def _hierarchy(point: str, version: int, root: str, own: str | None) -> Hierarchy | None:
    """Own's path from the mount's root (a mount of a sub-group shows only that part)."""
    if own is None:
        return None
    if root != "/" and (own == root or own.startswith(root + "/")):
        own = own[len(root) :] or "/"
    return Hierarchy(Path(point), version, PurePosixPath(own))


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


@functools.cache
def this_hierarchy() -> Hierarchy | None:
    """The CPU hierarchy of this process (read once: the hub does not move)."""
    return find_hierarchy(_read(Path("/proc/self/mountinfo")), _read(Path("/proc/self/cgroup")))


def place(pid: int, server: str, name: str, nice: int) -> Path | None:
    """Move a new server's process into its own group in the servers' group `name`,
    weighted as one process of that nice. The server's group, or None if it stays
    where it started (nice 0, no name, or the hub may not; said once)."""
    if nice <= 0 or not name:
        return None
    hierarchy = this_hierarchy()
    if hierarchy is None:
        _warn_once(name, "this system has no CPU controller")
        return None
    try:
        return _place(hierarchy, pid, server, name, nice)
    except ProcessLookupError:
        return None  # it ended at once: its spawn reports that, and its group goes after
    except OSError as e:
        _warn_once(name, f"{e.strerror or e} ({e.filename or hierarchy.base(name)})")
        return None


def _place(hierarchy: Hierarchy, pid: int, server: str, name: str, nice: int) -> Path:
    base = hierarchy.base(name)
    for attempt in (1, 2):
        try:
            if base not in _made:
                _make(hierarchy, base, nice)
                _made.add(base)
            group = base / group_name(server)
            group.mkdir(exist_ok=True)
            (group / "cgroup.procs").write_text(str(pid))
            return group
        except FileNotFoundError:
            # The last server's stop (here or in another hub) removed the servers' group
            # meanwhile: make it again, once.
            _made.discard(base)
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _make(hierarchy: Hierarchy, base: Path, nice: int) -> Path:
    """The servers' group, made if needed, with its weight."""
    if hierarchy.version == 2:
        _delegate_cpu(base.parent)
    base.mkdir(exist_ok=True)
    if hierarchy.version == 2:
        _delegate_cpu(base)
        (base / "cpu.weight.nice").write_text(str(nice))
    else:
        (base / "cpu.shares").write_text(str(shares(nice)))
    return base


def _delegate_cpu(group: Path) -> None:
    """v2: let the group's children be weighted (a no-op where they already are)."""
    control = group / "cgroup.subtree_control"
    if "cpu" not in _read(control).split():
        control.write_text("+cpu")


def group_name(server: str) -> str:
    """A server's group in the servers' group: `user-` and its file stem, or a digest
    of it if that is long or not one plain name."""
    name = f"user-{server}"
    if len(name.encode()) > LONGEST_NAME or "/" in name or "\0" in name:
        return "user-" + hashlib.sha256(server.encode()).hexdigest()[:32]
    return name


def shares(nice: int) -> int:
    """The v1 weight of one process of that nice: each step about 1.25 times less."""
    return max(2, round(V1_DEFAULT_SHARES / 1.25**nice))


def release(server: str, name: str) -> None:
    """Remove a stopped server's group, then the servers' group once it is empty.
    A group that still has processes (a server's leftover daemon) stays."""
    hierarchy = this_hierarchy()
    if not name or hierarchy is None:
        return
    group = hierarchy.base(name) / group_name(server)
    for path in (group, group.parent):
        try:
            path.rmdir()
            _made.discard(path)
        except FileNotFoundError:
            continue
        except OSError as e:
            if e.errno not in (errno.EBUSY, errno.ENOTEMPTY):
                log.warning("Could not remove CPU group %s: %s", path, e.strerror)
            return


def _warn_once(name: str, why: str) -> None:
    if name in _warned:
        return
    _warned.add(name)
    log.warning(
        "User servers run at their nice value only, not in the CPU group %r: %s. "
        "Under autogroups or systemd a nice value weighs only among its own group's "
        "processes, so a class starting its servers can slow the hub (README: server_nice).",
        name,
        why,
    )
