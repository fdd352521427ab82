"""The database work of each user action on a real hub: transactions, writes, statements.

Starts `flaskhub run` (SQLite file, CHP, the `password` authenticator, the local
spawner with the built-in single-user server, as the integration tests do) with
benchmarks/counting/ on PYTHONPATH and TX_COUNT_DIR set: its sitecustomize.py
counts, in every hub process, what requests and the greenlets they start (a
spawn, a stop) do on the database, leaving out the background loops. Then it
drives the hub through each action, as a browser or an API client would, and
prints what each cost:

    .venv/bin/python benchmarks/transactions.py [--json-out after.json] [--before before.json]
    .venv/bin/python benchmarks/transactions.py --spawner docker

`--spawner docker` starts the servers as containers of the built-in server's image
(`images/build builtin`, which it calls) on the local Docker engine instead, and
removes every container, volume and network it made at the end.

`--before` prints the figures of an earlier run (its --json-out) beside these;
`--sql` lists each action's statements (on stderr).
An action ends when its effect is in the database and the counts stood still
for half a second. GET user is asked three times with each kind of token: the
first use of a token also notes when it was used (a write, once a minute).
"""

from __future__ import annotations

import argparse
import json
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from tests.helpers import browser_session, wait_for, xsrf_token  # noqa: E402
from tests.integration.conftest import FLASKHUB, Hub, hub_env, start_hub  # noqa: E402

PASSWORD = "a-benchmark-password"
SERVICE_TOKEN = "benchmark-service-token-0123456789abcdef"
QUIET_SECONDS = 0.5
SHOW_SQL = False
FIGURES = ("transactions", "writes", "statements")


def totals(folder: Path) -> dict[str, Any]:
    """The counts of every hub process so far, summed; "sql": each process's statements."""
    summed: dict[str, Any] = {**dict.fromkeys(FIGURES, 0), "sql": {}}
    for path in folder.glob("*.json"):
        counts = json.loads(path.read_text())
        for key in FIGURES:
            summed[key] += counts[key]
        summed["sql"][path.stem] = counts["sql"]
    return summed


def measured(folder: Path, action: Callable[[], Any], into: dict[str, Any], name: str) -> Any:
    """Put what action() cost into[name], once its work stood still for QUIET_SECONDS;
    return what action() returned."""
    before = totals(folder)
    value = action()
    last, since = totals(folder), time.monotonic()
    while time.monotonic() - since < QUIET_SECONDS:
        time.sleep(0.05)
        now = totals(folder)
        if now != last:
            last, since = now, time.monotonic()
    into[name] = {key: last[key] - before[key] for key in FIGURES}
    if SHOW_SQL:
        print(f"-- {name}", file=sys.stderr)
        for pid, statements in last["sql"].items():
            for statement in statements[len(before["sql"].get(pid, [])) :]:
                print(f"   {statement}", file=sys.stderr)
    return value


def add_user(env: dict[str, str], name: str, cwd: Path) -> None:
    import subprocess

    subprocess.run(
        [FLASKHUB, "user", "add", name, "--password-stdin"],
        env=env,
        cwd=cwd,
        input=PASSWORD + "\n",
        text=True,
        check=True,
        capture_output=True,
    )


def log_in(hub: Hub, name: str) -> Callable[[], requests.Session]:
    """The POST of a login form (the page fetched first, outside the count)."""
    browser = browser_session()
    page = browser.get(f"{hub.public_url}/hub/login", timeout=30)
    form = {"username": name, "password": PASSWORD, "_xsrf": xsrf_token(page.text)}

    def post() -> requests.Session:
        answer = browser.post(
            f"{hub.public_url}/hub/login", data=form, allow_redirects=False, timeout=60
        )
        assert answer.status_code == 302, answer.text
        return browser

    return post


def server_state(hub: Hub, name: str) -> str:
    rows = hub.query(
        "SELECT servers.state FROM servers JOIN users ON users.id = servers.user_id "
        "WHERE users.name = ? AND servers.name = ''",
        name,
    )
    return rows[0][0] if rows else "none"


def server_token(hub: Hub, name: str) -> str:
    """The running server's JUPYTERHUB_API_TOKEN, from its process's environment."""
    rows = hub.query(
        "SELECT servers.spawner_state FROM servers JOIN users ON users.id = servers.user_id "
        "WHERE users.name = ? AND servers.name = ''",
        name,
    )
    state = json.loads(rows[0][0])
    if "container_id" in state:  # --spawner docker: the container's environment
        import docker

        client = docker.from_env()
        try:
            container = client.containers.get(state["container_id"])
            environ = [v.encode() for v in container.attrs["Config"]["Env"]]
        finally:
            client.close()
    else:
        environ = Path(f"/proc/{state['pid']}/environ").read_bytes().split(b"\0")
    found = [v for v in environ if v.startswith(b"JUPYTERHUB_API_TOKEN=")]
    return found[0].split(b"=", 1)[1].decode()


def run(workdir: Path, spawner: dict[str, Any]) -> dict[str, dict[str, int]]:
    counts = workdir / "counts"
    counts.mkdir()
    env = hub_env(
        workdir / "data",
        authenticator="password",
        services=[{"name": "bench", "api_token": SERVICE_TOKEN, "admin": True}],
        log_level="WARNING",
        **spawner,
    )
    env["PYTHONPATH"] = f"{HERE / 'counting'}:{env['PYTHONPATH']}"
    env["TX_COUNT_DIR"] = str(counts)
    if SHOW_SQL:
        env["TX_COUNT_SQL"] = "1"
    (workdir / "data").mkdir()
    for name in ("alice", "bob"):
        add_user(env, name, workdir)
    hub = start_hub(workdir / "data", env)
    results: dict[str, dict[str, int]] = {}
    try:
        alice = measured(counts, log_in(hub, "alice"), results, "login (password)")
        bob = log_in(hub, "bob")()

        def spawn() -> None:
            answer = alice.get(f"{hub.public_url}/hub/spawn", allow_redirects=False, timeout=60)
            assert answer.status_code == 302, answer.text
            # Not only running: a failed spawn ends the wait at once (its message is
            # in the hub's log), not after the timeout.
            wait_for(lambda: server_state(hub, "alice") in ("running", "failed"), 60, 0.05)
            assert server_state(hub, "alice") == "running", "the spawn failed: see the hub's log"

        measured(counts, spawn, results, "spawn (Start My Server)")
        tokens = {
            "user's own": hub.token("alice"),
            "admin": hub.admin_token,
            "service": SERVICE_TOKEN,
            "server's": server_token(hub, "alice"),
        }
        for kind, token in tokens.items():
            for attempt in ("first", "then"):

                def get_user(token: str = token) -> None:
                    answer = hub.api("GET", "/users/alice", token=token)
                    assert answer.status_code in (200, 403), answer.text

                measured(counts, get_user, results, f"GET user, {kind} token ({attempt})")
        measured(counts, share_accept(hub, tokens, bob), results, "share code accept")

        def stop() -> None:
            answer = hub.api("DELETE", "/users/alice/server", token=tokens["user's own"])
            assert answer.status_code in (202, 204), answer.text
            wait_for(lambda: server_state(hub, "alice") == "stopped", 60, 0.05)

        measured(counts, stop, results, "stop")
    finally:
        hub.stop()
    return results


def in_docker(workdir: Path) -> dict[str, dict[str, int]]:
    """run() with the docker spawner and the built-in server's image; then everything made
    under its own docker_prefix is removed."""
    import docker

    from app.spawners.docker import LABEL_HUB
    from tests.integration.docker_engine import BUILTIN_IMAGE

    subprocess.run([str(HERE.parent / "images" / "build"), "builtin"], check=True)
    prefix = f"fhtx-{secrets.token_hex(3)}"
    client = docker.from_env(timeout=120)
    try:
        return run(
            workdir, {"spawner": "docker", "docker_prefix": prefix, "docker_image": BUILTIN_IMAGE}
        )
    finally:
        mine = {"label": f"{LABEL_HUB}={prefix}"}
        for container in client.containers.list(all=True, filters=mine):
            container.remove(force=True)
        for volume in client.volumes.list(filters=mine):
            volume.remove(force=True)
        for network in client.networks.list(filters=mine):
            network.remove()
        client.close()


def share_accept(hub: Hub, tokens: dict[str, str], bob: requests.Session) -> Callable[[], None]:
    """Bob's POST of the accept form of a code to alice's server (the code made by an
    admin and its page shown outside the count)."""
    made = hub.api("POST", "/share-codes/alice/", token=tokens["admin"], json={})
    assert made.status_code == 200, made.text
    code = made.json()["code"]
    page = bob.get(f"{hub.public_url}/hub/accept-share", params={"code": code}, timeout=30)
    form = {"code": code, "_xsrf": xsrf_token(page.text)}

    def accept() -> None:
        answer = bob.post(
            f"{hub.public_url}/hub/accept-share", data=form, allow_redirects=False, timeout=60
        )
        assert answer.status_code == 302, answer.text

    return accept


def table(results: dict[str, dict[str, int]], before: dict[str, dict[str, int]] | None) -> str:
    """Markdown: per action, transactions / writes / statements (before → after)."""

    def cell(action: str, key: str) -> str:
        now = str(results[action][key])
        if before is None or action not in before:
            return now
        return f"{before[action][key]} → {now}"

    lines = ["| action | transactions | writes | statements |", "|---|---|---|---|"]
    for action in results:
        lines.append(f"| {action} | " + " | ".join(cell(action, k) for k in FIGURES) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json-out", type=Path, help="write the figures as JSON")
    parser.add_argument("--before", type=Path, help="an earlier run's --json-out, shown beside")
    parser.add_argument("--sql", action="store_true", help="list each action's statements")
    parser.add_argument("--spawner", choices=("local", "docker"), default="local")
    args = parser.parse_args()
    global SHOW_SQL
    SHOW_SQL = args.sql
    with tempfile.TemporaryDirectory(prefix="flaskhub-tx-") as tmp:
        if args.spawner == "docker":
            results = in_docker(Path(tmp))
        else:
            results = run(Path(tmp), {})
    if args.json_out:
        args.json_out.write_text(json.dumps(results, indent=2) + "\n")
    before = json.loads(args.before.read_text()) if args.before else None
    print(table(results, before))


if __name__ == "__main__":
    main()
