"""Where FlaskHub's worker spends its CPU during storms of spawns, by CPU time.

Starts FlaskHub alone as side_by_side.py does (the tiny server for every user),
with cpu_sampler/sitecustomize.py in its workers, then runs --storms storms of
--spawns spawns at once (each awaited as side_by_side.py awaits them, then all
stopped). It prints, per storm, the seconds taken and the CPU of the worker and
of CHP until all were served; then, over every storm, the functions of the
hub's own code by their share of the worker's samples (a function's callees
included), and the functions that were running when sampled.

    .venv/bin/python benchmarks/cpu_profile.py [--spawns 200] [--storms 3] [--top 40]

A sampler by wall time (py-spy's default) counts a thread blocked in the kernel
(a vfork waiting for its child's exec, say) as busy; this one counts CPU time
only, at some cost: a sample every 2 ms of CPU runs Python in the worker.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import hubs  # noqa: E402
import measure  # noqa: E402

SAMPLER = Path(__file__).resolve().parent / "cpu_sampler"
# The hub's own code, as the sampler names files (the last folder and the file).
OWN = re.compile(r"\((app|api|auth|pages|servers|spawners|proxy|identity)/")


def storm(
    hub: hubs.RunningHub, names: list[str], folder: Path | None, pids: dict[str, int]
) -> dict:
    """One storm: the sampler's counts (folder) cleared before, written when all are served."""
    api = measure.Client(hub.public_url, hub.token)
    routes = measure.proxy_routes(measure.Client(hub.proxy_api, hub.proxy_token()))
    if folder is not None:
        # Taken at the worker's first sample of the storm (an idle worker takes none).
        (folder / "reset").touch()
    marks = []

    def cpu() -> float:
        marks.append({what: hubs.cpu_seconds([pid]) for what, pid in pids.items()})
        if len(marks) == 2 and folder is not None:
            (folder / "dump").touch()
        return sum(marks[-1].values())

    result = measure.spawn_all(api, hub.public_url, names, 180, cpu=cpu, routes=routes)
    used = {what: round(marks[1][what] - marks[0][what], 2) for what in pids}
    return {"seconds": result["seconds"], "served": result["served"], "cpu_seconds": used}


def read_stacks(folder: Path, worker: int, timeout: float = 10.0) -> collections.Counter[str]:
    """The worker's dump, once written (it looks for the request as it runs)."""
    path = folder / f"stacks-{worker}.txt"
    deadline = time.monotonic() + timeout
    while (folder / "dump").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    stacks: collections.Counter[str] = collections.Counter()
    if path.exists():
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            stacks[stack] += int(count)
        path.unlink()
    return stacks


def shares(stacks: collections.Counter[str], top: int) -> str:
    """The hub's functions by inclusive share, then the running functions by own share."""
    total = sum(stacks.values()) or 1
    inclusive: collections.Counter[str] = collections.Counter()
    running: collections.Counter[str] = collections.Counter()
    for stack, count in stacks.items():
        frames = stack.split(";")
        for frame in set(frames):
            if OWN.search(frame):
                inclusive[frame] += count
        running[frames[-1]] += count
    lines = [f"{total} samples of the worker's CPU", "", "the hub's functions, callees included:"]
    lines += [f"{100 * n / total:5.1f}%  {frame}" for frame, n in inclusive.most_common(top)]
    lines += ["", "running when sampled:"]
    lines += [f"{100 * n / total:5.1f}%  {frame}" for frame, n in running.most_common(top)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spawns", type=int, default=200, help="spawns at once in a storm")
    parser.add_argument("--storms", type=int, default=3)
    parser.add_argument("--top", type=int, default=40, help="lines of each list")
    parser.add_argument("--raw", type=Path, help="write every stack and its count here")
    parser.add_argument(
        "--no-sampler", action="store_true", help="the figures alone, without the sampler's cost"
    )
    args = parser.parse_args()
    if not hubs.CHP.exists():
        raise SystemExit(f"{hubs.CHP} is missing: run `npm ci --prefix proxy` first")
    folder = Path(tempfile.mkdtemp(prefix="cpu-profile-"))
    workdir = Path(tempfile.mkdtemp(prefix="cpu-profile-hub-"))
    tag = f"bench-{secrets.token_hex(6)}"
    if not args.no_sampler:
        # Not FLASKHUB_*: the hub would read it as a setting (and hubs.py leaves it out).
        os.environ["BENCH_CPU_PROFILE_DIR"] = str(folder)
        os.environ["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(SAMPLER), os.environ.get("PYTHONPATH")])
        )
    hub = hubs.start_flaskhub(workdir, tag, args.spawns)
    try:
        api = measure.Client(hub.public_url, hub.token)
        measure.create_users(api, 0, args.spawns, 500, 4)
        worker, *others = hub.hub_pids()[1:]
        if others:
            raise SystemExit("more than one worker: this profiles one")
        pids = {"worker": worker, "CHP": hub.proxy_pids()[0]}
        names = [measure.username(i) for i in range(args.spawns)]
        stacks: collections.Counter[str] = collections.Counter()
        sampled = None if args.no_sampler else folder
        for number in range(1, args.storms + 1):
            figures = storm(hub, names, sampled, pids)
            if sampled is not None:
                stacks.update(read_stacks(sampled, worker))
            print(f"storm {number}: {figures}", flush=True)
        if sampled is not None:
            print(shares(stacks, args.top))
        if args.raw:
            args.raw.write_text("".join(f"{stack} {n}\n" for stack, n in stacks.items()))
    finally:
        hub.stop()
        stray = hubs.leftovers(tag)
        if stray:
            print(f"{len(stray)} processes outlived the stop, killed: {stray}", file=sys.stderr)
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
