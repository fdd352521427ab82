"""Start and stop the hubs of the side-by-side benchmark, and account for their processes.

Each hub starts fresh (its own temporary directory, free loopback ports) with
the same tiny server (tiny_server.py) as its spawner command. Every process
the benchmark causes to start carries the run's tag, in its environment (hubs,
workers, CHP) or on its command line (user servers), so `leftovers` finds any
that outlived a stop, by pid.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CHP = REPO / "proxy" / "node_modules" / ".bin" / "configurable-http-proxy"
TINY_SERVER = HERE / "tiny_server.py"
TAG_ENV = "BENCH_RUN_TAG"
JUPYTERHUB_REQUIREMENT = "jupyterhub>=6,<7"
START_TIMEOUT = 90.0
STOP_TIMEOUT = 60.0


def free_ports(count: int) -> list[int]:
    """Ports free on loopback now (held open together, so all differ)."""
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll check every 50 ms until true; RuntimeError naming `what` after timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} within {timeout:g} s")


def http_status(url: str, token: str | None = None) -> int:
    """Status of a GET on loopback, 0 if nothing answers."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=5)
    headers = {"Authorization": f"token {token}"} if token else {}
    try:
        conn.request("GET", parts.path or "/", headers=headers)
        return conn.getresponse().status
    except OSError:
        return 0
    finally:
        conn.close()


def tiny_command(tag: str) -> list[str]:
    """The user servers' command, the same for both hubs and the physical limit."""
    return [sys.executable, str(TINY_SERVER), "--tag", tag]


# ---------------------------------------------------------------- processes


def children(pid: int) -> list[int]:
    """Pids whose parent is pid."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rfind(")") + 2 :].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time used so far by pids (those still alive), in seconds."""
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def memory_mib(pids: list[int], field: str) -> float:
    """A memory figure summed over pids, in MiB: "Rss" or "Pss" of /proc/<pid>/smaps_rollup.

    RSS counts a page shared by several processes in each of them (a forked
    worker's pages shared with its arbiter twice); PSS divides it among them, so
    the PSS of a family of processes adds up to the memory they take together.
    """
    total_kib = 0
    for pid in pids:
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        for line in rollup.splitlines():
            if line.startswith(f"{field}:"):
                total_kib += int(line.split()[1])
    return total_kib / 1024


def alive(pid: int) -> bool:
    """True if pid exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] != "Z"


def tagged(tag: str) -> list[int]:
    """Live processes carrying the run's tag in their environment or command line."""
    marker = f"{TAG_ENV}={tag}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            env = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            env = []
        if (marker in env or tag in cmdline(int(entry.name))) and alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def terminate(process: subprocess.Popen[bytes], sig: int, timeout: float) -> None:
    """Send sig, wait up to timeout, then SIGKILL."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def leftovers(tag: str) -> list[str]:
    """Kill (SIGKILL, by pid) every tagged process still alive; describe each."""
    found = []
    for pid in tagged(tag):
        found.append(f"{pid} {cmdline(pid)[:120]}")
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return found


# --------------------------------------------------------------------- hubs


@dataclass
class RunningHub:
    """A hub started by the benchmark: where it answers and which processes are its own."""

    name: str
    public_url: str
    token: str
    tag: str
    workdir: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    hub_pids: Callable[[], list[int]] = list
    proxy_pids: Callable[[], list[int]] = list
    # CHP's REST API and its token (read once the hub has made it).
    proxy_api: str = ""
    proxy_token: Callable[[], str] = str

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the hub's processes and its CHP have used so far."""
        return cpu_seconds([*self.hub_pids(), *self.proxy_pids()])

    def memory_mib(self) -> dict[str, float]:
        """PSS and RSS summed over every hub process (CHP and user servers excluded)."""
        pids = self.hub_pids()
        return {field: round(memory_mib(pids, field.capitalize()), 1) for field in ("pss", "rss")}

    def log_tail(self) -> str:
        logs = sorted(self.workdir.glob("*.log"))
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-2000:]}" for p in logs)

    def stop(self) -> None:
        """The hub first (it stops its user servers), then what else was started, in order."""
        for process in self.processes:
            terminate(process, signal.SIGINT, STOP_TIMEOUT)


def bench_env(tag: str) -> dict[str, str]:
    """The environment of every process started here: ours less FlaskHub settings, plus tag."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLASKHUB_", "CONFIGPROXY"))}
    env[TAG_ENV] = tag
    return env


def start_flaskhub(workdir: Path, tag: str, spawns: int = 0) -> RunningHub:
    """`flaskhub run` (gunicorn's arbiter, its workers and its CHP) with an admin service;
    `spawns` at once allowed (both hubs' default limit is 100)."""
    port, hub_port, api_port = free_ports(3)
    token = secrets.token_hex(24)
    settings = {
        "data_dir": str(workdir / "data"),
        "port": port,
        "hub_port": hub_port,
        "proxy_api_port": api_port,
        "spawner": "simple",
        "spawner_cmd": tiny_command(tag),
        "services": [{"name": "bench", "api_token": token, "admin": True}],
        "log_level": "WARNING",
        "concurrent_spawn_limit": max(spawns, 100),
    }
    env = bench_env(tag)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    for key, value in settings.items():
        env[f"FLASKHUB_{key.upper()}"] = value if isinstance(value, str) else json.dumps(value)
    flaskhub = Path(sys.executable).parent / "flaskhub"
    with (workdir / "flaskhub.log").open("ab") as log:
        process = subprocess.Popen(
            [str(flaskhub), "run"], env=env, cwd=workdir, stdout=log, stderr=subprocess.STDOUT
        )
    hub = RunningHub("FlaskHub", f"http://127.0.0.1:{port}", token, tag, workdir, [process])
    # `flaskhub run` execs into gunicorn's arbiter: the arbiter is process.pid, and
    # its workers are the children that run gunicorn too (not CHP, not user servers).
    hub.hub_pids = lambda: [
        process.pid,
        *(p for p in children(process.pid) if "gunicorn" in cmdline(p)),
    ]
    hub.proxy_pids = lambda: [
        p for p in children(process.pid) if any(n in cmdline(p) for n in ("chp.mjs", "http-proxy"))
    ]
    hub.proxy_api = f"http://127.0.0.1:{api_port}"
    hub.proxy_token = lambda: (workdir / "data" / "proxy_auth_token").read_text().strip()
    wait_ready(hub, process)
    return hub


def start_jupyterhub(workdir: Path, tag: str, venv: Path, spawns: int = 0) -> RunningHub:
    """CHP (the repository's own), then JupyterHub with an admin-like service token;
    `spawns` at once allowed."""
    port, hub_port, api_port = free_ports(3)
    token = secrets.token_hex(24)
    env = bench_env(tag)
    env.update(
        CONFIGPROXY_AUTH_TOKEN=secrets.token_hex(24),
        BENCH_JH_RUN_DIR=str(workdir),
        BENCH_JH_PORT=str(port),
        BENCH_JH_HUB_PORT=str(hub_port),
        BENCH_JH_PROXY_API_PORT=str(api_port),
        BENCH_JH_ADMIN_TOKEN=token,
        BENCH_JH_SPAWNER_CMD=json.dumps(tiny_command(tag)),
        BENCH_JH_SPAWN_LIMIT=str(max(spawns, 100)),
    )
    proxy_args = [
        *("--ip", "127.0.0.1", "--port", str(port)),
        *("--api-ip", "127.0.0.1", "--api-port", str(api_port)),
        *("--error-target", f"http://127.0.0.1:{hub_port}/hub/error", "--log-level", "warn"),
    ]
    with (workdir / "chp.log").open("ab") as log:
        chp = subprocess.Popen([str(CHP), *proxy_args], env=env, stdout=log, stderr=log)
    hub = RunningHub("JupyterHub", f"http://127.0.0.1:{port}", token, tag, workdir, [chp])
    routes = f"http://127.0.0.1:{api_port}/api/routes"
    wait_until(
        lambda: http_status(routes) == 403 or chp.poll() is not None, 30, "CHP did not answer"
    )
    config = HERE / "jupyterhub_config.py"
    with (workdir / "jupyterhub.log").open("ab") as log:
        process = subprocess.Popen(
            [str(venv / "bin" / "jupyterhub"), "-f", str(config)],
            env=env,
            cwd=workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    hub.processes.insert(0, process)  # stopped first: it stops its servers, then CHP goes
    hub.hub_pids = lambda: [process.pid]
    hub.proxy_pids = lambda: [chp.pid]
    hub.proxy_api = f"http://127.0.0.1:{api_port}"
    hub.proxy_token = lambda: env["CONFIGPROXY_AUTH_TOKEN"]
    wait_ready(hub, process)
    return hub


def wait_ready(hub: RunningHub, process: subprocess.Popen[bytes]) -> None:
    """Until the hub answers its API through the proxy with the benchmark's token."""

    def ready() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"{hub.name} exited at start:\n{hub.log_tail()}")
        return http_status(f"{hub.public_url}/hub/api/users?limit=1", hub.token) == 200

    try:
        wait_until(ready, START_TIMEOUT, f"{hub.name} did not answer through its proxy")
    except RuntimeError:
        hub.stop()
        raise


def jupyterhub_venv(bench_dir: Path) -> Path:
    """A virtual environment with JupyterHub 6 under bench_dir, made if missing."""
    venv = bench_dir / "jupyterhub6"
    jupyterhub = venv / "bin" / "jupyterhub"
    if jupyterhub.exists():
        version = subprocess.run([str(jupyterhub), "--version"], capture_output=True, text=True)
        if version.stdout.strip().startswith("6."):
            return venv
    print(f"Installing {JUPYTERHUB_REQUIREMENT} into {venv} (once) ...", flush=True)
    bench_dir.mkdir(parents=True, exist_ok=True)
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, JUPYTERHUB_REQUIREMENT], check=True)
    return venv
