"""The measurements of the side-by-side benchmark, against any hub with JupyterHub's REST API.

Everything goes through the hub's public URL (its proxy) with JupyterHub's
API shapes, so the same calls measure FlaskHub and JupyterHub. Every loop is
bounded by a count and by a time budget.
"""

from __future__ import annotations

import http.client
import json
import random
import re
import shutil
import statistics
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import requests

PAGINATION = "application/jupyterhub-pagination+json"
POLL_INTERVAL = 0.05
WRK_MISSING = "wrk is not installed: apt-get install -y wrk (Debian/Ubuntu) or see wrk's README"


class Client:
    """Keep-alive HTTP/1.1 to one loopback base URL, one connection per thread."""

    def __init__(self, base: str, token: str | None = None, timeout: float = 120.0) -> None:
        parts = urlsplit(base)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.token = token
        self.timeout = timeout
        self.local = threading.local()

    def connection(self, fresh: bool = False) -> http.client.HTTPConnection:
        conn = getattr(self.local, "conn", None)
        if conn is None or fresh:
            if conn is not None:
                conn.close()
            conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            self.local.conn = conn
        return conn

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        """Status and body; status 0 when the connection failed twice."""
        sent = {"Accept": "application/json", **(headers or {})}
        if self.token:
            sent["Authorization"] = f"token {self.token}"
        data = None if body is None else json.dumps(body)
        if data is not None:
            sent["Content-Type"] = "application/json"
        for attempt in (0, 1):  # a keep-alive connection the server closed: once more
            conn = self.connection(fresh=attempt == 1)
            try:
                conn.request(method, path, body=data, headers=sent)
                response = conn.getresponse()
                return response.status, response.read()
            except (http.client.HTTPException, OSError) as e:
                error = repr(e).encode()
        return 0, error

    def json(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        status, data = self.request(method, path, **kwargs)
        try:
            return status, json.loads(data)
        except ValueError:
            return status, None


def timed(call: Callable[[], Any]) -> tuple[float, Any]:
    """Seconds taken by call, and what it returned."""
    t0 = time.perf_counter()
    result = call()
    return time.perf_counter() - t0, result


def username(i: int) -> str:
    return f"bench-{i:06d}"


def total_users(api: Client) -> int | None:
    status, body = api.json("GET", "/hub/api/users?limit=1", headers={"Accept": PAGINATION})
    return body["_pagination"]["total"] if status == 200 else None


# ------------------------------------------------------------------ users


def create_users(api: Client, start: int, stop: int, batch: int, concurrency: int) -> dict:
    """Bulk-create users start..stop-1 (POST /hub/api/users), `concurrency` batches at once."""
    batches = [range(i, min(i + batch, stop)) for i in range(start, stop, batch)]

    def post(names: range) -> int:
        body = {"usernames": [username(i) for i in names]}
        return api.request("POST", "/hub/api/users", body=body)[0]

    with ThreadPoolExecutor(concurrency) as pool:
        seconds, statuses = timed(lambda: list(pool.map(post, batches)))
    created = stop - start
    return {
        "users": created,
        "seconds": round(seconds, 3),
        "users_per_s": round(created / seconds, 1),
        "statuses": sorted(set(statuses)),
        "total_after": total_users(api),
    }


def page_latency(api: Client, users: int, limit: int, samples: int, budget: float) -> dict:
    """GET one page of `limit` users at random offsets (the same for each hub): p50, p95."""
    rng = random.Random(users)
    times: list[float] = []
    deadline = time.monotonic() + budget
    while len(times) < samples and (len(times) < 3 or time.monotonic() < deadline):
        offset = rng.randrange(max(1, users - limit))
        path = f"/hub/api/users?offset={offset}&limit={limit}"
        seconds, (status, body) = timed(
            lambda p=path: api.json("GET", p, headers={"Accept": PAGINATION})
        )
        if status != 200 or len(body["items"]) != min(limit, users - offset):
            return {"error": f"GET {path} -> {status}"}
        times.append(seconds)
    p50, p95 = quantile(times, 0.5), quantile(times, 0.95)
    return {"samples": len(times), "p50_ms": ms(p50), "p95_ms": ms(p95)}


def walk_pages(api: Client, limit: int) -> tuple[int, int]:
    """Follow _pagination.next from offset 0 to the end: (pages, users seen)."""
    offset, pages, seen = 0, 0, 0
    while pages < 100_000:
        path = f"/hub/api/users?offset={offset}&limit={limit}"
        status, body = api.json("GET", path, headers={"Accept": PAGINATION})
        if status != 200:
            raise RuntimeError(f"GET {path} -> {status}")
        pages, seen = pages + 1, seen + len(body["items"])
        following = body["_pagination"].get("next")
        if not following:
            break
        offset = following["offset"]
    return pages, seen


def walk_latency(api: Client, limit: int, walks: int, budget: float) -> dict:
    """Median time to walk every page, over `walks` walks (at least one, then within budget)."""
    times, pages, seen = [], 0, 0
    deadline = time.monotonic() + budget
    while len(times) < walks and (not times or time.monotonic() < deadline):
        seconds, (pages, seen) = timed(lambda: walk_pages(api, limit))
        times.append(seconds)
    median = statistics.median(times)
    return {"walks": len(times), "pages": pages, "users": seen, "median_ms": ms(median)}


def user_token(api: Client, name: str) -> str:
    """A new API token of user `name`, requested with the admin token."""
    status, body = api.json("POST", f"/hub/api/users/{name}/tokens", body={"note": "bench"})
    if status not in (200, 201):
        raise RuntimeError(f"POST /hub/api/users/{name}/tokens -> {status} {body}")
    return str(body["token"])


# -------------------------------------------------------------------- wrk


def wrk(url: str, token: str, connections: int, seconds: int, threads: int) -> dict:
    """req/s, p50 and p99 of GET url with `connections` connections for `seconds`."""
    program = shutil.which("wrk")
    if program is None:
        raise SystemExit(WRK_MISSING)
    command = [
        *(program, f"-t{threads}", f"-c{connections}", f"-d{seconds}s"),
        *("--latency", "--timeout", "10s", "-H", f"Authorization: token {token}", url),
    ]
    out = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60).stdout
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M))
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:(.*)", out)
    return {
        "rps": float(rps.group(1)) if rps else None,
        "p50_ms": wrk_ms(latency.get("50")),
        "p99_ms": wrk_ms(latency.get("99")),
        "non_2xx": int(bad.group(1)) if bad else 0,
        "socket_errors": errors.group(1).strip() if errors else None,
    }


def wrk_ms(value: str | None) -> float | None:
    """wrk's '850.00us', '3.12ms', '1.20s', '2.00m' in milliseconds."""
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value or "")
    if not match:
        return None
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[match.group(2)]
    return round(float(match.group(1)) * scale, 2)


# ----------------------------------------------------------------- spawns


def served_by(base: str, name: str) -> bool:
    """True if GET base/ is answered by the tiny server of `name` (not by a hub)."""
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=5)
    try:
        conn.request("GET", f"{parts.path}/")
        response = conn.getresponse()
        return response.status == 200 and response.read() == f"tiny {name}\n".encode()
    except OSError:
        return False
    finally:
        conn.close()


class Arrivals:
    """Names become due for checks as their request returns; the last success's time counts."""

    def __init__(self, names: Iterable[str]) -> None:
        self.pending = set(names)
        self.due: list[str] = []
        self.failed: dict[str, str] = {}
        self.lock = threading.Lock()

    def arrive(self, name: str, failure: str | None = None) -> None:
        with self.lock:
            if failure:
                self.failed[name] = failure
                self.pending.discard(name)
            else:
                self.due.append(name)


def wait_served(
    arrivals: Arrivals,
    url_of: Callable[[str], str],
    t0: float,
    timeout: float,
    routes: Callable[[], set[str]] | None = None,
) -> dict:
    """Poll each due name's URL until its tiny server answers; seconds until the last did.

    With `routes` (proxy_routes), each sweep first reads the proxy's table and asks only
    the names routed (/user/<name>). Asked through the proxy, an unrouted name's poll
    reaches the hub: hundreds a second during a storm, which counted as the hub's CPU per
    spawn and slowed the spawns they measured (browsers wait on the progress stream)."""
    done: dict[str, float] = {}
    with ThreadPoolExecutor(8) as pool:
        while arrivals.pending and time.perf_counter() - t0 < timeout:
            with arrivals.lock:
                due = list(arrivals.due)
            if routes is not None:
                routed = routes()
                due = [name for name in due if f"/user/{name}" in routed]
            answers = pool.map(lambda n: served_by(url_of(n), n), due)
            for name, served in zip(due, answers, strict=True):
                if served:
                    done[name] = time.perf_counter() - t0
                    with arrivals.lock:
                        arrivals.due.remove(name)
                        arrivals.pending.discard(name)
            time.sleep(POLL_INTERVAL)
    failed = dict(arrivals.failed, **{n: "not served in time" for n in arrivals.pending})
    return {
        "served": len(done),
        "failed": len(failed),
        "failures": dict(list(failed.items())[:5]),
        "seconds": round(max(done.values()), 3) if done and not failed else None,
    }


def proxy_routes(proxy_api: Client) -> Callable[[], set[str]]:
    """The paths the proxy routes now, without a trailing slash: one GET of CHP's REST
    API, which both hubs drive."""

    def paths() -> set[str]:
        status, routes = proxy_api.json("GET", "/api/routes")
        if status != 200 or not isinstance(routes, dict):
            return set()
        return {path.rstrip("/") for path in routes}  # CHP keeps /user/x/ as /user/x

    return paths


def login_cookie(base: str, name: str) -> str:
    """A browser's login through the hub's own form (both hubs' dummy authenticator takes
    any password); the Cookie header its pages then take (JupyterHub answers a page
    asked with a token with a redirect to the login)."""
    with requests.Session() as session:
        page = session.get(f"{base}/hub/login", timeout=30)
        form = {"username": name, "password": "bench"}
        xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.text)
        if xsrf:
            form["_xsrf"] = xsrf.group(1)
        answer = session.post(f"{base}/hub/login", data=form, allow_redirects=False, timeout=30)
        if answer.status_code != 302:
            raise RuntimeError(f"login as {name}: {answer.status_code} {answer.text[:200]}")
        return "; ".join(f"{c.name}={c.value}" for c in session.cookies)


class Probe(threading.Thread):
    """GET one URL every `interval` seconds (a new request as soon as the last answered, if
    that took longer) until stopped; the latency of each answer, and what failed."""

    def __init__(self, url: str, headers: dict[str, str], interval: float = 0.01) -> None:
        super().__init__(daemon=True)
        self.client = Client(url, timeout=30)
        self.path = urlsplit(url).path
        self.headers = headers
        self.interval = interval
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            t0 = time.perf_counter()
            status, _ = self.client.request("GET", self.path, headers=self.headers)
            took = time.perf_counter() - t0
            if status == 200:
                self.latencies.append(took)
            else:
                self.failures.append(str(status))
            self.halt.wait(max(0.0, self.interval - took))

    def summary(self) -> dict:
        """Count, failures, p50 / p99 / max in ms."""
        self.halt.set()
        self.join(timeout=60)
        found = self.latencies
        return {
            "count": len(found),
            "failed": len(self.failures),
            "failures": sorted(set(self.failures))[:5],
            "p50_ms": ms(quantile(found, 0.5)) if found else None,
            "p99_ms": ms(quantile(found, 0.99)) if found else None,
            "max_ms": ms(max(found)) if found else None,
        }


def spawn_all(
    api: Client,
    public_url: str,
    names: list[str],
    timeout: float,
    probes: dict[str, Probe] | None = None,
    cpu: Callable[[], float] | None = None,
    routes: Callable[[], set[str]] | None = None,
) -> dict:
    """Start a server for each name at once; seconds until every one is served through the
    proxy (asked once routed, with `routes`: wait_served). `probes` run from just before
    the first request until all are served; `cpu()` (seconds used so far) is read then
    too, for the CPU the storm took."""
    arrivals = Arrivals(names)
    probes = probes or {}
    for probe in probes.values():
        probe.start()
    cpu0 = cpu() if cpu else 0.0

    def post(name: str) -> None:
        status, body = api.request("POST", f"/hub/api/users/{name}/server")
        ok = status in (201, 202)
        arrivals.arrive(name, None if ok else f"POST -> {status} {body[:120]!r}")

    with ThreadPoolExecutor(len(names)) as pool:
        t0 = time.perf_counter()
        for name in names:
            pool.submit(post, name)
        result = wait_served(arrivals, lambda n: f"{public_url}/user/{n}", t0, timeout, routes)
    result["cpu_seconds"] = round(cpu() - cpu0, 3) if cpu else None
    result["during"] = {what: probe.summary() for what, probe in probes.items()}
    result["stopped_in_s"] = stop_all(api, names, timeout)
    return result


def stop_all(api: Client, names: list[str], timeout: float) -> float | None:
    """Stop each name's server; seconds until the hub lists none of them, None on timeout."""
    t0 = time.perf_counter()
    with ThreadPoolExecutor(min(len(names), 16)) as pool:
        list(pool.map(lambda n: api.request("DELETE", f"/hub/api/users/{n}/server"), names))
    remaining = list(names)
    while remaining and time.perf_counter() - t0 < timeout:
        remaining = [n for n in remaining if listed(api, n)]
        if remaining:
            time.sleep(POLL_INTERVAL)
    return None if remaining else round(time.perf_counter() - t0, 3)


def listed(api: Client, name: str) -> bool:
    """True while the hub lists a server of `name` (or does not answer)."""
    status, body = api.json("GET", f"/hub/api/users/{name}")
    return status != 200 or bool(body.get("servers"))


def physical_limit(command: list[str], count: int, ports: list[int], timeout: float) -> dict:
    """Start `count` tiny servers directly, at once; seconds until every one answers HTTP."""
    names = [f"direct-{i}" for i in range(count)]
    port_of = dict(zip(names, ports, strict=True))
    arrivals = Arrivals(names)
    processes = []
    t0 = time.perf_counter()
    try:
        for name in names:
            args = ["--port", str(port_of[name]), "--name", name]
            processes.append(subprocess.Popen([*command, *args]))
            arrivals.arrive(name)
        return wait_served(arrivals, lambda n: f"http://127.0.0.1:{port_of[n]}", t0, timeout)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)


# ---------------------------------------------------------------- helpers


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)
