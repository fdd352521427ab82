"""Real Jupyter clients nobody on this team wrote: jupyterhub-singleuser (JupyterLab)
as the users' server, and jupyterhub-idle-culler as a service.

They run from their own environment (`.venv-jupyter`, made by `./test`; another
one can be named with FLASKHUB_JUPYTER_VENV), never FlaskHub's.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
import websocket

from tests.helpers import wait_for
from tests.integration.conftest import REPO, Hub, login, server_pids

pytestmark = pytest.mark.integration

JUPYTER_VENV = Path(os.environ.get("FLASKHUB_JUPYTER_VENV", REPO / ".venv-jupyter"))
SINGLEUSER = JUPYTER_VENV / "bin" / "jupyterhub-singleuser"
CULLER = JUPYTER_VENV / "bin" / "jupyterhub-idle-culler"
CULLER_TOKEN = "idle-culler-" + uuid.uuid4().hex

if not SINGLEUSER.exists():
    if os.environ.get("CI"):
        raise RuntimeError(f"{SINGLEUSER} is missing: ./test should have installed it")
    pytest.skip("the Jupyter environment is not installed (run ./test)", allow_module_level=True)


@pytest.fixture(scope="module")
def hub(hub_factory: Callable[..., Hub]) -> Hub:
    return hub_factory(
        spawner_cmd=[str(SINGLEUSER), "--allow-root"],
        services=[{"name": "idle-culler", "api_token": CULLER_TOKEN, "admin": True}],
        slow_spawn_timeout=30,
        http_timeout=60,
        # Users may share their servers (JupyterHub's sharing docs).
        load_roles=[{"name": "user", "scopes": ["self", "shares!user", "read:users:name"]}],
    )


def _start(hub: Hub, name: str) -> None:
    hub.api("POST", f"/users/{name}")
    response = hub.api("POST", f"/users/{name}/server")
    assert response.status_code in (201, 202), response.text
    wait_for(lambda: hub.api("GET", f"/users/{name}").json()["server"], timeout=60)


def _execute(hub: Hub, name: str, token: str, code: str) -> str:
    """Start a kernel through the proxy and run code over its websocket; the result."""
    auth = {"Authorization": f"token {token}"}
    kernel = hub.http.post(
        f"{hub.public_url}/user/{name}/api/kernels", json={}, headers=auth, timeout=30
    )
    assert kernel.status_code == 201, kernel.text
    ws_url = hub.public_url.replace("http://", "ws://")
    ws = websocket.create_connection(
        f"{ws_url}/user/{name}/api/kernels/{kernel.json()['id']}/channels",
        header=[f"Authorization: token {token}"],
        timeout=30,
    )
    msg_id = uuid.uuid4().hex
    ws.send(
        json.dumps(
            {
                "header": {
                    "msg_id": msg_id,
                    "msg_type": "execute_request",
                    "username": name,
                    "session": uuid.uuid4().hex,
                    "version": "5.3",
                    "date": "",
                },
                "parent_header": {},
                "metadata": {},
                "channel": "shell",
                "buffers": [],
                "content": {
                    "code": code,
                    "silent": False,
                    "store_history": False,
                    "user_expressions": {},
                    "allow_stdin": False,
                },
            }
        )
    )
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            message = json.loads(ws.recv())
            if (
                message.get("parent_header", {}).get("msg_id") == msg_id
                and message["msg_type"] == "execute_result"
            ):
                return str(message["content"]["data"]["text/plain"])
    finally:
        ws.close()
    raise AssertionError("no execute_result within 60 s")


def test_jupyterlab_through_oauth_kernel_and_refusal(hub: Hub) -> None:
    _start(hub, "ada")
    browser = login(hub, "ada")
    lab = browser.get(f"{hub.public_url}/user/ada/lab", timeout=60)
    assert lab.status_code == 200 and "JupyterLab" in lab.text
    hops = [r.url.replace(hub.public_url, "") for r in lab.history]
    assert any(h.startswith("/hub/api/oauth2/authorize?") for h in hops)
    assert any(h.startswith("/user/ada/oauth_callback?code=") for h in hops)
    assert all(r.status_code in (301, 302, 303, 307) for r in lab.history)  # no prompt

    contents = browser.get(f"{hub.public_url}/user/ada/api/contents", timeout=30)
    assert contents.status_code == 200 and contents.json()["type"] == "directory"

    token = hub.token("ada")
    assert _execute(hub, "ada", token, "1+1") == "2"
    kernels = hub.http.get(
        f"{hub.public_url}/user/ada/api/kernels",
        headers={"Authorization": f"token {token}"},
        timeout=30,
    )
    assert kernels.status_code == 200 and len(kernels.json()) == 1

    # Another user: refused by the hub's OAuth step and by the server itself.
    other = login(hub, "bea")
    refused = other.get(f"{hub.public_url}/user/ada/lab", timeout=60)
    assert refused.status_code == 403 and "JupyterLab" not in refused.text
    stranger = hub.http.get(
        f"{hub.public_url}/user/ada/api/contents",
        headers={"Authorization": f"token {hub.token('bea')}"},
        timeout=30,
    )
    assert stranger.status_code == 403


def test_a_shared_jupyterlab_opens_for_whom_it_was_shared_with(hub: Hub) -> None:
    _start(hub, "eve")
    hub.api("POST", "/users/fay")
    shared = hub.api("POST", "/shares/eve/", hub.token("eve"), json={"user": "fay"})
    assert shared.status_code == 200, shared.text
    # jupyterhub-singleuser's own HubOAuth accepts the share's access:servers!server=eve/.
    lab = login(hub, "fay").get(f"{hub.public_url}/user/eve/lab", timeout=60)
    assert lab.status_code == 200 and "JupyterLab" in lab.text
    hub.api("DELETE", "/shares/eve/", hub.token("eve"))
    refused = login(hub, "fay").get(f"{hub.public_url}/user/eve/lab", timeout=60)
    assert refused.status_code == 403


def test_server_reports_activity_and_version(hub: Hub) -> None:
    _start(hub, "cyd")
    started = datetime.now(UTC)
    token = hub.token("cyd")
    assert _execute(hub, "cyd", token, "2*21") == "42"
    wait_for(lambda: 'POST /hub/api/users/cyd/activity HTTP/1.1" 200' in hub.log(), timeout=60)
    model = hub.api("GET", "/users/cyd").json()
    last = datetime.fromisoformat(model["last_activity"].replace("Z", "+00:00"))
    assert last.year == started.year and model["servers"][""]["last_activity"]
    # A jupyterhub-singleuser 6.x (what pip installs today; the hub records the version it
    # reports) checked the hub's version and logged no mismatch warning.
    (reported,) = hub.query(
        "SELECT s.version FROM servers s JOIN users u ON u.id = s.user_id"
        " WHERE u.name = 'cyd' AND s.name = ''"
    )
    assert reported[0].startswith("6."), reported
    log = (hub.data_dir / "logs" / "cyd.log").read_text()
    assert "JupyterHubSingleUser" in log
    assert not [line for line in log.splitlines() if line.startswith("[W") and "version" in line]
    # The hub recorded the version the server reported: no loop warning at N=2.
    browser = login(hub, "cyd")
    page = browser.get(
        f"{hub.public_url}/hub/user/cyd/lab?redirects=2", allow_redirects=False, timeout=30
    )
    assert page.status_code == 302
    assert page.headers["Location"] == "/user/cyd/lab?redirects=3"


@pytest.fixture
def culler_run(hub: Hub) -> Iterator[Callable[[Callable[[], object]], str]]:
    """culler_run(until): run jupyterhub-idle-culler until until() holds; its output."""
    processes: list[subprocess.Popen[str]] = []

    def run(until: Callable[[], object]) -> str:
        env = dict(os.environ, JUPYTERHUB_API_TOKEN=CULLER_TOKEN)
        proc = subprocess.Popen(
            [
                str(CULLER),
                f"--url={hub.hub_url}/hub/api",
                "--timeout=6",
                "--cull-every=2",
                "--cull-users=True",
                "--cull-admin-users=False",
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        processes.append(proc)
        try:
            wait_for(until, timeout=60, interval=0.5)
            done = True
        except AssertionError:
            done = False
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
        assert done, f"not done within 60 s; the culler said:\n{out}"
        return out

    yield run
    for proc in processes:
        if proc.poll() is None:
            proc.kill()


def test_idle_culler_stops_idle_servers_and_deletes_idle_users(
    hub: Hub, culler_run: Callable[[Callable[[], object]], str]
) -> None:
    _start(hub, "idle-server")
    _start(hub, "busy")
    hub.api("POST", "/users/idle-user")
    idle_pids = server_pids("idle-server")
    assert idle_pids
    stop = threading.Event()

    def keep_busy() -> None:
        # What the busy user's server does: report activity (here every second).
        while not stop.is_set():
            now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
            requests.post(
                f"{hub.public_url}/hub/api/users/busy/activity",
                headers={"Authorization": f"token {hub.admin_token}"},
                json={"last_activity": now, "servers": {"": {"last_activity": now}}},
                timeout=10,
            )
            stop.wait(1)

    def culled() -> bool:
        gone = ("idle-server", "idle-user")
        return all(hub.api("GET", f"/users/{name}").status_code == 404 for name in gone)

    busy = threading.Thread(target=keep_busy)
    busy.start()
    try:
        # Culled once idle for longer than --timeout=6, at a pass every 2 s; busy is
        # checked at each of those passes too.
        output = culler_run(culled)
    finally:
        stop.set()
        busy.join()
    assert "Culling server idle-server" in output, output
    assert "Culling user idle-user" in output, output
    assert all(not Path(f"/proc/{pid}").exists() for pid in idle_pids)
    assert hub.api("GET", "/users/busy").json()["server"] == "/user/busy/"
    assert hub.api("GET", "/users/admin").status_code == 200
    assert "Culling server busy" not in output
    hub.api("DELETE", "/users/busy/server")


def test_a_managed_culler_declared_without_a_token_works_across_restarts(
    hub_factory: Callable[..., Hub],
) -> None:
    """The culler as its README declares it: a managed service with no api_token (the hub
    makes one, the same after a restart) and a role with the scopes it needs."""
    name = "jupyterhub-idle-culler-service"
    culler = [str(JUPYTER_VENV / "bin" / "python"), "-m", "jupyterhub_idle_culler"]
    hub = hub_factory(
        services=[{"name": name, "command": [*culler, "--timeout=4", "--cull-every=2"]}],
        load_roles=[
            {
                "name": "jupyterhub-idle-culler-role",
                "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
                "services": [name],
            }
        ],
    )

    def culler_token() -> str:
        pid = hub.api("GET", f"/services/{name}").json()["pid"]
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        token = next(v for v in environ if v.startswith(b"JUPYTERHUB_API_TOKEN="))
        return token.partition(b"=")[2].decode()

    def culled(user: str) -> None:
        _start(hub, user)
        wait_for(lambda: hub.api("GET", f"/users/{user}").json()["server"] is None, timeout=60)

    culled("idle-once")
    token = culler_token()
    assert len(token) >= 32 and token not in hub.log()
    assert hub.api("GET", "/user", token=token).json()["name"] == name
    hub.restart()
    culled("idle-after-restart")
    assert culler_token() == token
    log = (hub.data_dir / "logs" / f"service-{name}.log").read_text()
    assert "Culling server idle-after-restart" in log, log
    assert "403" not in log, log


def test_jhubctl_runs_a_notebook_as_a_temporary_user(hub: Hub, tmp_path: Path) -> None:
    """jhub-client's `jhubctl run --temporary-user` end to end: it asks who its token is
    (GET /authorizations/token/<token>, deprecated but served as JupyterHub 6.1 does),
    creates a user, a token and a JupyterLab server, runs the notebook in a kernel over
    the proxy, checks the outputs, then stops the server and deletes the user."""
    notebook = tmp_path / "check.ipynb"
    cells = [("6*7", "execute_result", "42"), ("print('hello from jhubctl')", "stream", None)]
    notebook.write_text(
        json.dumps(
            {
                "nbformat": 4,
                "nbformat_minor": 4,
                "metadata": {},
                "cells": [
                    {
                        "cell_type": "code",
                        "metadata": {},
                        "execution_count": 1,
                        "source": source,
                        "outputs": [
                            {"output_type": kind, "name": "stdout", "text": "hello from jhubctl\n"}
                            if kind == "stream"
                            else {
                                "output_type": kind,
                                "execution_count": 1,
                                "metadata": {},
                                "data": {"text/plain": text},
                            }
                        ],
                    }
                    for source, kind, text in cells
                ],
            }
        )
    )
    before = {u["name"] for u in hub.api("GET", "/users").json()}
    result = subprocess.run(
        [
            str(JUPYTER_VENV / "bin" / "jhubctl"),
            "run",
            f"--hub={hub.public_url}",
            f"--notebook={notebook}",
            "--temporary-user",
            "--validate",
            f"--output-filename={tmp_path / 'out.ipynb'}",
        ],
        env=dict(os.environ, JUPYTERHUB_API_TOKEN=CULLER_TOKEN),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    out = json.loads((tmp_path / "out.ipynb").read_text())
    results = [cell["outputs"][0]["data"]["text/plain"] for cell in out["cells"]]
    assert results == ["42", "hello from jhubctl\n"]
    created = re.search(r"created username=(service-idle-culler-[0-9a-f-]+)", output)
    assert created, output
    # Temporary: its server stopped and the user deleted again.
    assert hub.api("GET", f"/users/{created[1]}").status_code == 404
    assert {u["name"] for u in hub.api("GET", "/users").json()} == before
    assert "/authorizations/token/:token endpoint is deprecated" in hub.log()
