"""Where the servers' CPU group goes and what it weighs (app.spawners.cpu), from the
kernel's own texts: /proc/self/mountinfo and /proc/self/cgroup as they read on a
v1 host (this machine's), a v2 host under systemd, and a container. Placing a
server writes into a folder standing for the cgroupfs: the files it writes and
their values are what the kernel would be told; the real kernel's answer is
tests/integration/test_lifecycle.py's."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pytest

from app.config import ConfigError, load
from app.spawners import cpu

V1_MOUNTS = """\
24 30 0:22 / /sys rw,nosuid - sysfs sysfs rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
V1_GROUPS = "5:memory:/x\n2:cpu,cpuacct:/hub.service\n0::/\n"
V2_MOUNTS = "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"


def test_v1_the_servers_group_is_a_child_of_the_hubs() -> None:
    found = cpu.find_hierarchy(V1_MOUNTS, V1_GROUPS)
    assert found == cpu.Hierarchy(
        Path("/sys/fs/cgroup/cpu,cpuacct"), 1, PurePosixPath("/hub.service")
    )
    assert found.base("fs") == Path("/sys/fs/cgroup/cpu,cpuacct/hub.service/fs")


def test_v1_a_hub_in_the_root_group() -> None:
    found = cpu.find_hierarchy(V1_MOUNTS, "2:cpu,cpuacct:/\n")
    assert found is not None and found.base("fs") == Path("/sys/fs/cgroup/cpu,cpuacct/fs")


@pytest.mark.parametrize(
    ("own", "base"),
    [
        # systemd: a sibling of the hub's service, in its slice (v2 puts no process
        # beside a group that weighs its children).
        ("/system.slice/flaskhub.service", "system.slice/fs"),
        ("/", "fs"),
    ],
)
def test_v2_the_servers_group_is_a_sibling_of_the_hubs(tmp_path: Path, own: str, base: str) -> None:
    (tmp_path / "sys/fs/cgroup").mkdir(parents=True)
    (tmp_path / "sys/fs/cgroup/cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    found = cpu.find_hierarchy(V2_MOUNTS, f"0::{own}\n", prefix=str(tmp_path))
    assert found is not None and found.version == 2
    assert found.base("fs") == tmp_path / "sys/fs/cgroup" / base


def test_v2_without_the_cpu_controller_is_none(tmp_path: Path) -> None:
    (tmp_path / "sys/fs/cgroup").mkdir(parents=True)
    (tmp_path / "sys/fs/cgroup/cgroup.controllers").write_text("memory pids\n")
    assert cpu.find_hierarchy(V2_MOUNTS, "0::/\n", prefix=str(tmp_path)) is None


def test_a_mount_of_the_hubs_own_group_reads_from_there() -> None:
    """A container sees its own group mounted at the top, and /proc/self/cgroup gives
    the whole path: the part under the mount's root is what counts."""
    mounts = "40 31 0:38 /docker/abc /sys/fs/cgroup/cpu ro - cgroup cgroup rw,cpu\n"
    found = cpu.find_hierarchy(mounts, "3:cpu:/docker/abc\n")
    assert found is not None and found.own == PurePosixPath("/")


def test_no_cpu_controller_is_none() -> None:
    assert cpu.find_hierarchy("35 31 0:32 / /m rw - cgroup cgroup rw,memory\n", "") is None


def test_v1_a_server_goes_into_its_own_group_under_one_weighed_as_its_nice(
    tmp_path: Path,
) -> None:
    hierarchy = cpu.Hierarchy(tmp_path, 1, PurePosixPath("/"))
    group = cpu._place(hierarchy, 4242, "ann", "fs", 10)
    assert group == tmp_path / "fs/user-ann"
    assert (group / "cgroup.procs").read_text() == "4242"
    assert (tmp_path / "fs/cpu.shares").read_text() == "110"


def test_v2_the_groups_are_delegated_the_cpu_and_weighed_by_nice(tmp_path: Path) -> None:
    (tmp_path / "slice").mkdir()
    hierarchy = cpu.Hierarchy(tmp_path, 2, PurePosixPath("/slice/hub.service"))
    group = cpu._place(hierarchy, 4242, "ann~lab", "fs", 15)
    assert group == tmp_path / "slice/fs/user-ann~lab"
    assert (tmp_path / "slice/cgroup.subtree_control").read_text() == "+cpu"
    assert (tmp_path / "slice/fs/cgroup.subtree_control").read_text() == "+cpu"
    assert (tmp_path / "slice/fs/cpu.weight.nice").read_text() == "15"


@pytest.mark.parametrize(("nice", "shares"), [(1, 819), (10, 110), (19, 15)])
def test_shares_are_the_kernels_weight_of_one_process_at_that_nice(nice: int, shares: int) -> None:
    assert cpu.shares(nice) == shares


@pytest.mark.parametrize("server", ["cgroup.procs", "cpu.shares", "tasks", "..", "a/b", "x" * 255])
def test_a_servers_group_is_never_a_file_of_the_kernel_nor_outside(
    tmp_path: Path, server: str
) -> None:
    """A user named like a control file would otherwise not be placed (the file is there),
    and run beside the hub: its group is always a new folder inside the servers' group."""
    hierarchy = cpu.Hierarchy(tmp_path, 1, PurePosixPath("/"))
    (tmp_path / "fs").mkdir()
    for control in ("cgroup.procs", "cpu.shares", "tasks"):
        (tmp_path / "fs" / control).write_text("")
    group = cpu._place(hierarchy, 4242, server, "fs", 10)
    assert group.parent == tmp_path / "fs" and group.name.startswith("user-")
    assert (group / "cgroup.procs").read_text() == "4242"


@pytest.mark.parametrize("name", ["../up", "a/b", "-x", " "])
def test_a_group_name_that_is_not_one_folder_is_refused(name: str) -> None:
    with pytest.raises(ConfigError, match="'server_cgroup'"):
        load(environ={}, overrides={"server_cgroup": name})


def test_no_group_is_allowed() -> None:
    assert load(environ={}, overrides={"server_cgroup": ""}).server_cgroup == ""


def test_a_servers_group_removed_meanwhile_is_made_again_with_its_weight(
    tmp_path: Path,
) -> None:
    """The last server's stop (here, or in another hub of the same name) removes the
    servers' group; the next server makes it again, weight included."""
    hierarchy = cpu.Hierarchy(tmp_path, 1, PurePosixPath("/"))
    first = cpu._place(hierarchy, 4242, "ann", "fs", 10)
    for made in (first / "cgroup.procs", tmp_path / "fs/cpu.shares"):
        made.unlink()  # what the kernel's rmdir does with a group's files
    first.rmdir()
    (tmp_path / "fs").rmdir()
    again = cpu._place(hierarchy, 4343, "bob", "fs", 10)
    assert (again / "cgroup.procs").read_text() == "4343"
    assert (tmp_path / "fs/cpu.shares").read_text() == "110"


def test_a_server_that_ended_at_once_is_no_warning_and_hides_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The kernel refuses a pid that is gone (ESRCH): that is the spawn's failure to
    report, not a CPU group the hub may not make, which is said once per name."""
    hierarchy = cpu.Hierarchy(tmp_path, 1, PurePosixPath("/"))
    monkeypatch.setattr(cpu, "this_hierarchy", lambda: hierarchy)
    monkeypatch.setattr(cpu, "_warned", set())
    monkeypatch.setattr(cpu, "_made", set())
    real_write = Path.write_text

    def gone(path: Path, text: str, *args: object) -> int:
        if path.name == "cgroup.procs":
            raise ProcessLookupError(3, "No such process")
        return real_write(path, text)

    monkeypatch.setattr(Path, "write_text", gone)
    assert cpu.place(4242, "ann", "fs-gone", 10) is None
    assert "nice value only" not in caplog.text
    (tmp_path / "fs-gone" / "cpu.shares").unlink()
    (tmp_path / "fs-gone" / "user-ann").rmdir()
    (tmp_path / "fs-gone").rmdir()
    (tmp_path / "fs-gone").write_text("")  # now a file: the group cannot be made
    cpu._made.clear()
    assert cpu.place(4343, "bob", "fs-gone", 10) is None
    assert "nice value only, not in the CPU group 'fs-gone'" in caplog.text
