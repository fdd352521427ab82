"""Each server as its user's own system account (issue 9 A), through the whole system.

The hub runs as root (as in CI) with `spawner = "local"`, creating accounts from a
template of this module's own, and the servers run from the servers' environment
that `.ci/setup` makes for accounts (`.venv-server`: Debian's python3, readable by
every account). Then, as one user's account, the other user's files, the hub's
secrets and the other server's environment cannot be read.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from app.spawners import cpu
from tests.helpers import wait_for
from tests.integration.conftest import REPO, Hub

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="servers as system accounts need root"),
]

SERVER_ENV = REPO / ".venv-server"
PREFIX = f"fhi{secrets.token_hex(2)}-"
SHARED_WARNING = "Every user's server runs as this hub's own account"


def account_settings() -> dict[str, Any]:
    """Servers as accounts made from this module's template, from the servers' environment."""
    program = SERVER_ENV.resolve() / "bin" / "flaskhub"
    assert program.exists(), f"{program} is missing: `.ci/setup` makes it when run as root"
    return {
        "spawner": "local",
        "system_user_template": PREFIX + "{username}",
        "create_system_users": True,
        "spawner_cmd": [str(program), "singleuser"],
    }


@pytest.fixture(scope="module")
def hub(hub_factory: Callable[..., Hub]) -> Iterator[Hub]:
    yield hub_factory(**account_settings())
    for entry in pwd.getpwall():
        if entry.pw_name.startswith(PREFIX) and entry.pw_uid != 0:
            subprocess.run(["pkill", "-KILL", "-u", entry.pw_name], check=False)
            # userdel refuses (8) while a killed server is not yet reaped by its hub.
            wait_for(lambda name=entry.pw_name: _userdel(name) != USERDEL_IN_USE)


USERDEL_IN_USE = 8


def _userdel(name: str) -> int:
    return subprocess.run(["userdel", "--remove", name], capture_output=True).returncode


@pytest.fixture(scope="module")
def running(hub: Hub) -> dict[str, int]:
    """alice's and bob's servers, started through the API: {name: pid}."""
    pids = {}
    assert hub.api("POST", "/users", json={"usernames": ["alice", "bob"]}).status_code == 201
    for name in ("alice", "bob"):
        response = hub.api("POST", f"/users/{name}/server")
        assert response.status_code == 201, response.text
        pids[name] = pid_of(hub, name)
    return pids


def pid_of(hub: Hub, name: str) -> int:
    """The pid of a user's default server, as this hub stored it."""
    ((state,),) = hub.query(
        "SELECT s.spawner_state FROM servers s JOIN users u ON u.id = s.user_id"
        " WHERE u.name = ? AND s.name = ''",
        name,
    )
    return int(json.loads(state)["pid"])


def as_account(name: str, *cmd: str) -> subprocess.CompletedProcess[str]:
    """Run a command as a user's system account."""
    return subprocess.run(
        ["runuser", "-u", PREFIX + name, "--", *cmd], capture_output=True, text=True, timeout=30
    )


def uid_of(pid: int) -> int:
    return Path(f"/proc/{pid}").stat().st_uid


def test_each_server_runs_as_its_users_own_account(hub: Hub, running: dict[str, int]) -> None:
    for name, pid in running.items():
        account = pwd.getpwnam(PREFIX + name)
        assert uid_of(pid) == account.pw_uid != 0
        home = Path(account.pw_dir).stat()
        assert (home.st_uid, home.st_mode & 0o777) == (account.pw_uid, 0o700)
    assert uid_of(running["alice"]) != uid_of(running["bob"])
    assert SHARED_WARNING not in hub.log()


def test_the_server_works_for_its_owner_through_the_proxy(
    hub: Hub, running: dict[str, int]
) -> None:
    url = f"{hub.public_url}/user/alice/api/status"
    mine = hub.http.get(url, headers={"Authorization": f"token {hub.token('alice')}"}, timeout=30)
    assert mine.status_code == 200
    theirs = hub.http.get(url, headers={"Authorization": f"token {hub.token('bob')}"}, timeout=30)
    assert theirs.status_code == 403


def test_an_account_reads_its_own_server_and_nothing_of_anyone_else(
    hub: Hub, running: dict[str, int]
) -> None:
    # The control: alice's account reads what is hers, so the refusals below mean something.
    own = as_account("alice", "cat", f"/proc/{running['alice']}/environ")
    assert own.returncode == 0 and "JUPYTERHUB_API_TOKEN=" in own.stdout
    assert as_account("alice", "ls", pwd.getpwnam(PREFIX + "alice").pw_dir).returncode == 0

    forbidden = {
        "bob's home": ["ls", pwd.getpwnam(PREFIX + "bob").pw_dir],
        "bob's server's environment": ["cat", f"/proc/{running['bob']}/environ"],
        "the cookie secret": ["cat", str(hub.data_dir / "cookie_secret")],
        "the database": ["cat", str(hub.data_dir / "flaskhub.sqlite")],
        "the proxy token": ["cat", str(hub.data_dir / "proxy_auth_token")],
    }
    for what, cmd in forbidden.items():
        result = as_account("alice", *cmd)
        assert result.returncode != 0, f"alice's account could read {what}"
        assert "Permission denied" in result.stderr, (what, result.stderr)


def test_an_account_cannot_take_its_server_out_of_the_servers_cpu_group(
    hub: Hub, running: dict[str, int]
) -> None:
    """server_cgroup is a bound, not a courtesy: alice's account cannot move her server
    back beside the hub, nor into bob's group, nor make a group of its own."""
    hierarchy = cpu.this_hierarchy()
    if hierarchy is None:
        pytest.skip("this system has no CPU controller")
    pid = running["alice"]
    base = hierarchy.base("flaskhub-servers")
    assert (base / "user-alice" / "cgroup.procs").read_text().split().count(str(pid)) == 1
    targets = {
        "the hub's group": base.parent / "cgroup.procs",
        "the servers' group": base / "cgroup.procs",
        "bob's group": base / "user-bob" / "cgroup.procs",
    }
    for what, procs in targets.items():
        result = as_account("alice", "sh", "-c", f"echo {pid} > {procs}")
        assert result.returncode != 0, f"alice's account moved her server into {what}"
        assert "Permission denied" in result.stderr, (what, result.stderr)
    made = as_account("alice", "mkdir", str(base / "user-alice" / "mine"))
    assert made.returncode != 0 and "Permission denied" in made.stderr, made.stderr
    assert (base / "user-alice" / "cgroup.procs").read_text().split().count(str(pid)) == 1


def test_after_the_database_is_replaced_an_admin_gives_alice_her_account_back(
    hub: Hub, running: dict[str, int], hub_factory: Callable[..., Hub]
) -> None:
    """Last in this module: alice's account leaves the module's hub for the new one."""
    account = pwd.getpwnam(PREFIX + "alice")
    written = as_account("alice", "sh", "-c", f"echo mine > {account.pw_dir}/notes.txt")
    assert written.returncode == 0, written.stderr
    # A new hub, as after a lost database: same template, no users, new stable ids.
    fresh = hub_factory(**account_settings())
    assert fresh.api("POST", "/users", json={"usernames": ["alice", "bob"]}).status_code == 201
    refused = fresh.api("POST", "/users/alice/server")
    assert refused.status_code == 500
    assert f"flaskhub user bind-account alice {PREFIX}alice" in refused.json()["message"]

    bound = fresh.cli("user", "bind-account", "alice", PREFIX + "alice")
    assert bound.returncode == 0, bound.stderr
    assert f"with its files in {account.pw_dir}" in bound.stdout
    assert f"bound system account {PREFIX}alice (uid {account.pw_uid}" in bound.stderr
    # Asked for another user: 409 names the account's owner.
    taken = fresh.api("POST", "/users/bob/system-account", json={"account": PREFIX + "alice"})
    assert taken.status_code == 409 and "belongs to user alice" in taken.json()["message"]

    assert fresh.api("POST", "/users/alice/server").status_code == 201
    pid = pid_of(fresh, "alice")
    assert uid_of(pid) == account.pw_uid
    read = as_account("alice", "cat", f"{account.pw_dir}/notes.txt")
    assert read.stdout == "mine\n"
