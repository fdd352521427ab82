"""A sampler of a gunicorn worker's Python stacks by the CPU time it uses (benchmarks only).

Python imports sitecustomize at start when its folder is on PYTHONPATH;
benchmarks/cpu_profile.py puts this one there, with BENCH_CPU_PROFILE_DIR
naming a folder. In each process gunicorn's arbiter forks as a worker, SIGPROF
then fires every SAMPLE_SECONDS of the process's CPU time (user and system, so a
thread blocked in the kernel is not counted, as a wall-clock sampler counts it),
and the handler counts the Python stack it interrupted. A file `reset` in the
folder clears the counts, a file `dump` writes them to `stacks-<pid>.txt` (one
stack and its count a line); both are looked for at each sample.
"""

from __future__ import annotations

import os

SAMPLE_SECONDS = 0.002
FOLDER = os.environ.get("BENCH_CPU_PROFILE_DIR")


def _stack(frame: object) -> str:
    parts = []
    while frame is not None:
        code = frame.f_code  # type: ignore[attr-defined]
        where = "/".join(code.co_filename.rsplit("/", 2)[-2:])
        parts.append(f"{code.co_qualname} ({where})")
        frame = frame.f_back  # type: ignore[attr-defined]
    return ";".join(reversed(parts))


def _start_in_worker() -> None:
    import collections
    import signal
    import sys

    # Only a gunicorn worker: CHP and the servers are started through a fork too, and an
    # interval timer outlives exec (SIGPROF would end a program that does not expect it).
    frame, names = sys._getframe(), set()
    while frame is not None:
        names.add(frame.f_code.co_name)
        frame = frame.f_back
    if "spawn_worker" not in names:
        return
    counts: collections.Counter[str] = collections.Counter()

    def sample(signum: int, frame: object) -> None:
        counts[_stack(frame)] += 1
        if os.path.exists(f"{FOLDER}/reset"):
            counts.clear()
            os.unlink(f"{FOLDER}/reset")
        if os.path.exists(f"{FOLDER}/dump"):
            with open(f"{FOLDER}/stacks-{os.getpid()}.txt", "w") as out:
                out.writelines(f"{stack} {n}\n" for stack, n in counts.items())
            os.unlink(f"{FOLDER}/dump")

    signal.signal(signal.SIGPROF, sample)
    signal.siginterrupt(signal.SIGPROF, False)  # system calls go on after a sample
    signal.setitimer(signal.ITIMER_PROF, SAMPLE_SECONDS, SAMPLE_SECONDS)


if FOLDER:
    os.register_at_fork(after_in_child=_start_in_worker)
