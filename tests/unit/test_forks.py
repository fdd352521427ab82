"""fork_safe(): a fork of the arbiter waits for its threads' guarded work.

Each case runs in a fresh interpreter (fork hooks cannot be unregistered). A
fork hook registered by the case lets the thread finish only once the fork has
begun, so without the guard the child would be made mid-work, as gunicorn's
first worker once was (it then hung on an import lock of a thread it did not
have).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.helpers import REPO

pytestmark = pytest.mark.process

# The child exits 0 if the thread's work was complete when it was forked (and the guard
# is free in the child), 1 if not.
FORK_DURING_WORK = """
import os, threading
from proxy.forks import fork_safe

started, go = threading.Event(), threading.Event()
state = {"done": False}
os.register_at_fork(before=go.set)  # runs before the guard's hook: the fork has begun
{setup}
thread = threading.Thread(target=work, daemon=True)
thread.start()
assert started.wait(10)
pid = os.fork()
if pid == 0:
    # The child's own threads may use fork_safe(): the guard is free again.
    child_thread = threading.Thread(target=lambda: fork_safe().__enter__(), daemon=True)
    child_thread.start()
    child_thread.join(10)
    os._exit(0 if state["done"] and not child_thread.is_alive() else 1)
_, status = os.waitpid(pid, 0)
print("complete" if os.waitstatus_to_exitcode(status) == 0 else "mid-work")
"""

GUARDED_BLOCK = """
def work():
    with fork_safe():
        started.set()
        go.wait(10)
        state["done"] = True
"""

HTTP_GET = """
import socket
from proxy.launcher import http_get

server = socket.create_server(("127.0.0.1", 0))

def serve():
    conn, _ = server.accept()
    conn.recv(65536)
    started.set()  # http_get is waiting for the answer
    go.wait(10)
    conn.sendall(b"HTTP/1.0 204 No Content\\r\\n\\r\\n")
    state["done"] = True  # before close: http_get returns only after it
    conn.close()

threading.Thread(target=serve, daemon=True).start()

def work():
    http_get("127.0.0.1", server.getsockname()[1], "/hub/health")
"""


@pytest.mark.parametrize("setup", [GUARDED_BLOCK, HTTP_GET], ids=["fork_safe", "http_get"])
def test_a_fork_waits_until_the_thread_s_work_is_done(setup: str) -> None:
    script = FORK_DURING_WORK.replace("{setup}", textwrap.dedent(setup))
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "complete"


def test_a_thread_may_fork_inside_fork_safe() -> None:
    # Popen with a preexec_fn runs the fork hooks in the thread holding the guard.
    script = textwrap.dedent(
        """
        import subprocess, threading
        from proxy.forks import fork_safe

        def work():
            with fork_safe():
                subprocess.run(["true"], preexec_fn=lambda: None, check=True, timeout=10)

        thread = threading.Thread(target=work)
        thread.start()
        thread.join(20)
        print("alive" if thread.is_alive() else "forked")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == "forked", result.stderr


# A managed service or CHP started by the arbiter's thread while gunicorn forks a
# worker: the fork comes right after Popen made the pipe through which it learns that the
# child ran its command. Unguarded, the worker kept that pipe, and Popen waited for the
# worker to exit: the service ran, but was never recorded and never restarted.
LAUNCH_DURING_FORK = """
import os, sys, threading, time
from pathlib import Path

pipe_made, fork_began = threading.Event(), threading.Event()
real_pipe = os.pipe

def pipe():
    fds = real_pipe()
    if threading.current_thread().name == "launch":
        pipe_made.set()
        fork_began.wait(10)
    return fds

os.pipe = pipe
{setup}
os.register_at_fork(before=fork_began.set)
thread = threading.Thread(target=launch, name="launch")
thread.start()
assert pipe_made.wait(10)
worker = os.fork()  # as gunicorn forks a worker
if worker == 0:
    time.sleep(30)  # a worker lives on
    os._exit(0)
thread.join(15)
print("stuck" if thread.is_alive() else "returned")
os.kill(worker, 9)
thread.join(15)
cleanup()
"""

SERVICE = """
from app.services.processes import ServiceProcess
from app.services.specs import ServiceSpec

service = ServiceProcess(ServiceSpec(name="svc", command=("sleep", "60")), {}, sys.argv[1])

def launch():
    proc = service._launch()
    assert service.pid_file.read_text() == str(proc.pid)

def cleanup():
    service.proc.kill()
"""

PROXY = """
from proxy.launcher import ProxyProcess, ProxyStartError

proxy = ProxyProcess(
    ip="127.0.0.1", port=9, api_ip="127.0.0.1", api_port=9, error_target=None,
    default_target="http://127.0.0.1:9", auth_token="t", cmd=["sleep", "60"],
    log_file=sys.argv[1] + "/chp.log",
)

def launch():  # "sleep" never serves: once started, it is given up at once
    try:
        proxy._launch(timeout=0)
    except ProxyStartError:
        pass

def cleanup():
    pass
"""


@pytest.mark.parametrize("setup", [SERVICE, PROXY], ids=["service", "chp"])
def test_a_child_started_while_a_worker_forks_is_started_at_once(
    tmp_path: Path, setup: str
) -> None:
    script = LAUNCH_DURING_FORK.replace("{setup}", textwrap.dedent(setup))
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "returned", result.stderr
