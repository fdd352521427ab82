"""FlaskHub and JupyterHub 6 side by side: the same measurements, one run, a ratio table.

Installs JupyterHub 6 once into its own virtual environment under
$FLASKHUB_BENCH_DIR (default ~/.cache/flaskhub-bench; never a dependency of
FlaskHub), then for each hub in turn: starts it fresh on loopback (own
temporary directory, free ports, CHP from proxy/node_modules, the tiny server
of tiny_server.py as every user's server), measures, and stops everything it
started. Prints a Markdown table: both values, FlaskHub / JupyterHub, and the
goal of issue 11 where there is one. Needs wrk (apt-get install -y wrk).

    .venv/bin/python benchmarks/side_by_side.py [--users 1000,10000] [--spawns 20,50]
        [--wrk-seconds 10] [--json-out results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import hubs  # noqa: E402
import measure  # noqa: E402

HUBS = ("flaskhub", "jupyterhub")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def measure_hub(hub: hubs.RunningHub, args: argparse.Namespace) -> dict[str, Any]:
    """Every figure of one running hub, in the order of the table."""
    api = measure.Client(hub.public_url, hub.token)
    result: dict[str, Any] = {"memory_empty_mib": hub.memory_mib()}
    created = 0
    for users in args.users:
        log(f"{hub.name}: create {created}..{users - 1}")
        result[f"create_{users}"] = measure.create_users(
            api, created, users, args.batch, args.create_concurrency
        )
        created = users
        result[f"page_{users}"] = measure.page_latency(
            api, users, args.page_limit, args.page_samples, args.budget
        )
        result[f"walk_{users}"] = measure.walk_latency(
            api, args.page_limit, args.walks, args.budget
        )
        result[f"memory_{users}_mib"] = hub.memory_mib()
    result.update(requests_per_second(hub, api, args))
    token = measure.user_token(api, measure.username(0)) if args.spawns else ""
    for count in args.spawns:
        result[f"spawn_{count}"] = spawns(hub, api, count, args, token)
    return result


def requests_per_second(
    hub: hubs.RunningHub, api: measure.Client, args: argparse.Namespace
) -> dict[str, Any]:
    """wrk on GET /hub/health (the ceiling through CHP) and GET user with a service and a
    user's token, taken in turn `--rounds` times; each figure is its best round (on a
    shared machine the others lost CPU to something else), with the hub's CPU time per
    request in that round."""
    name = measure.username(0)
    user_url = f"{hub.public_url}/hub/api/users/{name}"
    runs = {
        "health": (f"{hub.public_url}/hub/health", hub.token),
        "get_user_service": (user_url, hub.token),
        "get_user_user": (user_url, measure.user_token(api, name)),
    }
    best: dict[str, Any] = {}
    for round_ in range(1, args.rounds + 1):
        for key, (url, token) in runs.items():
            log(f"{hub.name}: wrk {key}, {args.wrk_seconds} s (round {round_})")
            before = hubs.cpu_seconds(hub.hub_pids())
            figures = measure.wrk(
                url, token, args.wrk_connections, args.wrk_seconds, args.wrk_threads
            )
            used = hubs.cpu_seconds(hub.hub_pids()) - before
            served = (figures["rps"] or 0) * args.wrk_seconds
            figures["cpu_ms_per_request"] = round(1000 * used / served, 3) if served else None
            if key not in best or (figures["rps"] or 0) > (best[key]["rps"] or 0):
                best[key] = figures
    return best


def spawns(
    hub: hubs.RunningHub, api: measure.Client, count: int, args: argparse.Namespace, token: str
) -> dict:
    """The physical limit (the same servers started directly), then `count` spawns at once
    (the hub's CPU counted), then `count` spawns again while a user's pages are probed."""
    log(f"{hub.name}: {count} tiny servers started directly (the physical limit)")
    ports = hubs.free_ports(count)
    physical = measure.physical_limit(hubs.tiny_command(hub.tag), count, ports, args.spawn_timeout)
    log(f"{hub.name}: {count} concurrent spawns")
    names = [measure.username(i) for i in range(count)]
    routes = None
    if args.wait_by == "routes":
        routes = measure.proxy_routes(measure.Client(hub.proxy_api, hub.proxy_token()))
    spawned = measure.spawn_all(
        api, hub.public_url, names, args.spawn_timeout, cpu=hub.cpu_seconds, routes=routes
    )
    log(f"{hub.name}: {count} concurrent spawns, with a user's pages probed every 10 ms")
    # The page as a browser navigating to it asks for it (the login cookie, and the Fetch
    # Metadata without which FlaskHub takes no cookie: README, Security), the API with
    # the user's token.
    user = measure.username(0)
    page = {
        "Cookie": measure.login_cookie(hub.public_url, user),
        "Accept": "text/html",
        "Sec-Fetch-Mode": "navigate",
        "Sec-Fetch-Dest": "document",
    }
    with_token = {"Authorization": f"token {token}"}
    probes = {
        "home": measure.Probe(f"{hub.public_url}/hub/home", page),
        "user": measure.Probe(f"{hub.public_url}/hub/api/users/{user}", with_token),
    }
    probed = measure.spawn_all(
        api, hub.public_url, names, args.spawn_timeout, probes, routes=routes
    )
    over = None
    if spawned["seconds"] and physical["seconds"]:
        over = round(spawned["seconds"] / physical["seconds"], 2)
    return {
        "physical": physical,
        "hub": spawned,
        "over_physical": over,
        # The storm's CPU in the hub's processes and CHP, until all were served.
        "cpu_ms_per_spawn": round(spawned["cpu_seconds"] * 1000 / count, 2),
        "during": probed["during"],
        "probed_seconds": probed["seconds"],
    }


def run_hub(which: str, args: argparse.Namespace, venv: Path | None) -> dict[str, Any]:
    """Start one hub fresh, measure it, stop it; report any process that outlived the stop."""
    tag = f"bench-{secrets.token_hex(6)}"
    workdir = Path(tempfile.mkdtemp(prefix=f"side-by-side-{which}-"))
    log(f"starting {which} in {workdir}")
    hub = None
    try:
        if which == "flaskhub":
            hub = hubs.start_flaskhub(workdir, tag, max(args.spawns, default=0))
        else:
            assert venv is not None
            hub = hubs.start_jupyterhub(workdir, tag, venv, max(args.spawns, default=0))
        result = measure_hub(hub, args)
    except BaseException:
        if hub is not None:
            print(hub.log_tail(), file=sys.stderr)
        raise
    finally:
        if hub is not None:
            log(f"stopping {which}")
            hub.stop()
        stray = hubs.leftovers(tag)
        if stray:
            log(f"{which}: {len(stray)} processes outlived the stop, killed: {stray}")
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    result["leftover_processes"] = stray
    return result


# ------------------------------------------------------------------ table


def row(figure: str, flask: Any, jupyter: Any, goal: str = "", met: bool | None = None) -> str:
    """One Markdown row: both values, their ratio, the goal and whether it is met."""
    ratio = f"{flask / jupyter:.2f}×" if isinstance(flask, int | float) and jupyter else "–"
    verdict = {True: "yes", False: "**no**", None: ""}[met]
    return f"| {figure} | {show(flask)} | {show(jupyter)} | {ratio} | {goal} | {verdict} |"


def show(value: Any) -> str:
    if value is None:
        return "failed"
    if not isinstance(value, float):
        return str(value)
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:#.3g}"


def ratio_goal(
    flask: Any, jupyter: Any, at_least: float | None, at_most: float | None
) -> bool | None:
    """Whether FlaskHub / JupyterHub meets a bound; None when a value is missing."""
    if not isinstance(flask, int | float) or not jupyter:
        return None
    ratio = flask / jupyter
    return (at_least is None or ratio >= at_least) and (at_most is None or ratio <= at_most)


def table(f: dict[str, Any], j: dict[str, Any], args: argparse.Namespace) -> str:
    """The ratio table (FlaskHub / JupyterHub) with the goals of issue 11."""
    lines = [
        "| figure | FlaskHub | JupyterHub | FlaskHub / JupyterHub | goal | met |",
        "|---|---|---|---|---|---|",
    ]
    for n in args.users:
        a, b = f[f"create_{n}"]["users_per_s"], j[f"create_{n}"]["users_per_s"]
        met = ratio_goal(a, b, 10, None)
        lines.append(row(f"bulk creation to {n:,} users (users/s)", a, b, "≥ 10×", met))
    for n in args.users:
        a, b = f[f"page_{n}"].get("p50_ms"), j[f"page_{n}"].get("p50_ms")
        figure = f"GET a page of {args.page_limit} at {n:,} users, p50 (ms)"
        lines.append(row(figure, a, b, "≤ 0.5×", ratio_goal(a, b, None, 0.5)))
    for n in args.users:
        a, b = f[f"walk_{n}"]["median_ms"], j[f"walk_{n}"]["median_ms"]
        lines.append(row(f"walk all {f[f'walk_{n}']['pages']} pages at {n:,} users (ms)", a, b))
    what = f"GET /hub/health (no database, no auth), c={args.wrk_connections} (req/s)"
    lines.append(row(what, f["health"]["rps"], j["health"]["rps"]))
    for kind in ("service", "user"):
        lines += get_user_rows(f[f"get_user_{kind}"], j[f"get_user_{kind}"], kind, args)
    lines.append(own_token_row(f, j))
    for key, what in (("health", "GET /hub/health"), ("get_user_user", "GET user, user token")):
        a, b = f[key].get("cpu_ms_per_request"), j[key].get("cpu_ms_per_request")
        lines.append(row(f"hub CPU per request, {what} (ms)", a, b))
    for k in args.spawns:
        lines += spawn_rows(f[f"spawn_{k}"], j[f"spawn_{k}"], k)
    for key, when in (("memory_empty_mib", "empty"), (f"memory_{max(args.users)}_mib", None)):
        a, b = f[key], j[key]
        figure = f"hub memory, {when or f'at {max(args.users):,} users'}"
        goal = ratio_goal(a["pss"], b["pss"], None, 0.75)
        lines.append(row(f"{figure}, PSS (MiB)", a["pss"], b["pss"], "≤ 0.75×", goal))
        lines.append(row(f"{figure}, RSS summed (MiB)", a["rss"], b["rss"]))
    return "\n".join(lines)


# FlaskHub / JupyterHub in req/s: issue 11's for a service token, issue 24's for a user's.
GET_USER_GOALS = {"service": 5.0, "user": 3.0}


def get_user_rows(a: dict, b: dict, kind: str, args: argparse.Namespace) -> list[str]:
    """req/s against the goal, then p50, p99 and FlaskHub's p99 / p50."""
    what = f"GET /hub/api/users/<name>, {kind} token, c={args.wrk_connections}"
    spread = a["p99_ms"] / a["p50_ms"] if a["p99_ms"] and a["p50_ms"] else None
    jspread = b["p99_ms"] / b["p50_ms"] if b["p99_ms"] and b["p50_ms"] else None
    at_least = GET_USER_GOALS[kind]
    met = ratio_goal(a["rps"], b["rps"], at_least, None)
    return [
        row(f"{what} (req/s)", a["rps"], b["rps"], f"≥ {at_least:g}×", met),
        row(f"{what}, p50 (ms)", a["p50_ms"], b["p50_ms"]),
        row(f"{what}, p99 (ms)", a["p99_ms"], b["p99_ms"]),
        f"| {what}, p99 / p50 | {show(spread)} | {show(jspread)} | – | FlaskHub ≤ 10 | "
        f"{'' if spread is None else ('yes' if spread <= 10 else '**no**')} |",
    ]


def own_token_row(f: dict[str, Any], j: dict[str, Any]) -> str:
    """Each hub's GET user with a user's token as a share of its own /hub/health (req/s,
    the same run): what a request costs beyond a bare one (issue 24: FlaskHub ≥ 0.5)."""
    shares = [
        h["get_user_user"]["rps"] / h["health"]["rps"]
        if h["get_user_user"]["rps"] and h["health"]["rps"]
        else None
        for h in (f, j)
    ]
    met = None if shares[0] is None else shares[0] >= 0.5
    figure = "GET user with the user's token / GET /hub/health, each hub's own (req/s)"
    return f"| {figure} | {show(shares[0])} | {show(shares[1])} | – | FlaskHub ≥ 0.5 | " + (
        f"{'' if met is None else ('yes' if met else '**no**')} |"
    )


def spawn_rows(a: dict, b: dict, k: int) -> list[str]:
    """Seconds until all routable, the physical limit of each run, and each hub's multiple of it."""
    over_a, over_b = a["over_physical"], b["over_physical"]
    direct_a, direct_b = a["physical"]["seconds"], b["physical"]["seconds"]
    met = None if over_a is None else over_a <= 1.2
    return [
        row(f"{k} concurrent spawns, all routable (s)", a["hub"]["seconds"], b["hub"]["seconds"]),
        row(f"{k} tiny servers started directly (s)", direct_a, direct_b),
        f"| {k} spawns / physical limit | {show(over_a)}× | {show(over_b)}× | – | "
        f"FlaskHub ≤ 1.2× | {'' if met is None else ('yes' if met else '**no**')} |",
        row(
            f"hub CPU per spawn, hub processes + CHP, {k} at once (ms)",
            a["cpu_ms_per_spawn"],
            b["cpu_ms_per_spawn"],
        ),
        *(storm_row(a["during"][what], b["during"][what], what, k) for what in STORM_PROBES),
    ]


STORM_PROBES = {"home": "GET /hub/home", "user": "GET user, own token"}


def storm_row(a: dict, b: dict, what: str, k: int) -> str:
    """A probe's p99 through the proxy while k servers start, against the ≤ 100 ms goal;
    failed probes are named, never left out."""
    figure = f"{STORM_PROBES[what]} every 10 ms during {k} spawns, p99 (ms)"
    if a["failed"] or b["failed"]:
        failed = {name: (x["failed"], x["failures"]) for name, x in (("F", a), ("J", b))}
        figure += f" [failed: {failed}]"
    p99 = a["p99_ms"]
    met = None if p99 is None or a["failed"] else p99 <= 100
    return row(figure, p99, b["p99_ms"], "FlaskHub ≤ 100", met)


# -------------------------------------------------------------------- CLI


def numbers(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    add("--users", type=numbers, default=[1000, 10_000], help="user counts, cumulative")
    add("--spawns", type=numbers, default=[20, 50], help="concurrent spawn counts")
    add("--wrk-seconds", type=int, default=10, help="duration of each wrk run")
    add("--wrk-connections", type=int, default=32)
    add("--wrk-threads", type=int, default=1)
    add("--rounds", type=int, default=3, help="wrk runs of each request, taken in turn (best)")
    add("--batch", type=int, default=500, help="users per bulk POST")
    add("--create-concurrency", type=int, default=4, help="bulk POSTs at once")
    add("--page-limit", type=int, default=200)
    add("--page-samples", type=int, default=50)
    add("--walks", type=int, default=3, help="walks of all pages (median)")
    add("--budget", type=float, default=60.0, help="seconds per latency measurement, at most")
    add("--spawn-timeout", type=float, default=180.0)
    add("--hubs", default=",".join(HUBS), help="which hubs, in order (the table needs both)")
    add(
        "--wait-by",
        choices=("routes", "proxy"),
        default="routes",
        help="how a spawn's end is awaited: each server asked through the proxy once CHP's "
        "table routes it (routes), or asked through the proxy from the start, its polls "
        "reaching the hub until routed (proxy, before 2026-12-07)",
    )
    add("--bench-dir", default=os.environ.get("FLASKHUB_BENCH_DIR", "~/.cache/flaskhub-bench"))
    add("--keep", action="store_true", help="keep each hub's temporary directory (logs)")
    add("--json-out", help="write every figure as JSON here")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    order = [h for h in args.hubs.split(",") if h]
    if not set(order) <= set(HUBS):
        raise SystemExit(f"--hubs: choose among {', '.join(HUBS)}")
    if max(args.spawns, default=0) > max(args.users):
        raise SystemExit("--spawns: each count needs at least as many users (--users)")
    if shutil.which("wrk") is None:
        raise SystemExit(measure.WRK_MISSING)
    if not hubs.CHP.exists():
        raise SystemExit(f"{hubs.CHP} is missing: run `npm ci --prefix proxy` first")
    venv = None
    if "jupyterhub" in order:
        venv = hubs.jupyterhub_venv(Path(args.bench_dir).expanduser())
    results: dict[str, Any] = {"args": vars(args), "cpus": os.cpu_count()}
    results["started"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    try:
        for which in order:
            results[which] = run_hub(which, args, venv)
    finally:  # what was measured, even when a later hub failed
        if args.json_out:
            Path(args.json_out).write_text(json.dumps(results, indent=1))
            log(f"wrote {args.json_out}")
    if set(order) == set(HUBS):
        print(table(results["flaskhub"], results["jupyterhub"], args))
    else:
        print(json.dumps(results[order[0]], indent=1))


if __name__ == "__main__":
    main()
