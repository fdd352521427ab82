"""A throwaway PostgreSQL cluster for tests: start, stop (an outage), start again.

Debian's `postgresql` package: initdb + pg_ctl, run as the `postgres` OS user
when we are root. It listens on a free port of 127.0.0.1 with its unix socket
in the cluster's temporary directory. Connections over the unix socket are
trusted (the fixture creates roles and databases through it); TCP connections
on 127.0.0.1 need a password (scram-sha-256), as in docker-compose.yml, so a
hub's URL has the form ``postgresql+psycopg://USER:PASSWORD@127.0.0.1:PORT/DB``.

Use the `postgres` fixture (tests/integration/conftest.py), one cluster per
test module.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.helpers import free_port


def pg_bin_dir() -> Path | None:
    """The newest installed PostgreSQL's bin directory (Debian's layout), else PATH's."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _as_postgres(args: list[str]) -> list[str]:
    """Run a server binary as the `postgres` OS user when we are root (initdb refuses root)."""
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


@dataclass
class Postgres:
    """A throwaway cluster: where it listens, how to reach it, how to stop and start it."""

    bin_dir: Path
    root: Path
    port: int
    user: str = "flaskhub"
    password: str = ""

    @property
    def socket_dir(self) -> Path:
        return self.root

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log_file(self) -> Path:
        return self.root / "postgres.log"

    def admin_url(self, database: str = "postgres") -> str:
        """Superuser, over the trusted unix socket."""
        return f"postgresql+psycopg://postgres@/{database}?host={self.socket_dir}&port={self.port}"

    def url(self, database: str) -> str:
        """The hub's URL form: a password over TCP (as in docker-compose.yml)."""
        return f"postgresql+psycopg://{self.user}:{self.password}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A fresh database owned by the test user; returns its URL."""
        name = f"flaskhub_{secrets.token_hex(4)}"
        self.admin_execute(f'CREATE DATABASE "{name}" OWNER "{self.user}"')
        return self.url(name)

    def admin_execute(self, sql: str) -> None:
        """Run one statement as the cluster's superuser (outside a transaction)."""
        engine = create_engine(self.admin_url(), isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(text(sql))
        finally:
            engine.dispose()

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        started = self._pg_ctl("-l", str(self.log_file), "-o", options, "-w", "-t", "30", "start")
        if started.returncode != 0:
            log = self.log_file.read_text(errors="replace") if self.log_file.exists() else ""
            raise RuntimeError(f"PostgreSQL did not start: {started.stderr}\n{log[-3000:]}")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (`fast`: clients are disconnected) and wait until it is down."""
        stopped = self._pg_ctl("-w", "-t", "15", "stop", "-m", mode)
        if stopped.returncode != 0:
            raise RuntimeError(f"PostgreSQL did not stop: {stopped.stderr}")

    @property
    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def _pg_ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin_dir / "pg_ctl"), "-D", str(self.data), *args]
        return subprocess.run(_as_postgres(command), capture_output=True, text=True, timeout=60)


def _initdb(pg: Postgres) -> None:
    # initdb wants a superuser password once TCP needs one; the fixture itself
    # connects over the trusted socket and never uses it.
    pwfile = pg.root / "pwfile"
    pwfile.write_text(secrets.token_hex(16) + "\n")
    if os.geteuid() == 0:
        shutil.chown(pg.root, "postgres")
        shutil.chown(pwfile, "postgres")
    pg.root.chmod(0o700)
    initdb = [str(pg.bin_dir / "initdb"), "-D", str(pg.data), "-U", "postgres", "-E", "UTF8"]
    initdb += ["--pwfile", str(pwfile), "--auth-local=trust", "--auth-host=scram-sha-256"]
    made = subprocess.run(
        _as_postgres([*initdb, "--no-sync"]), capture_output=True, text=True, timeout=60
    )
    if made.returncode != 0:
        raise RuntimeError(f"initdb failed: {made.stdout}\n{made.stderr}")


@contextmanager
def throwaway_cluster() -> Iterator[Postgres]:
    """A new cluster with a login role for the hub; stopped and removed at the end.

    Skips the test when PostgreSQL is not installed (fails in CI, where it must be).
    """
    bin_dir = pg_bin_dir()
    if bin_dir is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL's initdb is missing in CI: .ci/setup --test installs it")
        pytest.skip("PostgreSQL (initdb) is not installed")
    # Not under pytest's tmp dir: its parents are private to root, and the server
    # runs as `postgres`.
    root = Path(tempfile.mkdtemp(prefix="flaskhub-pg-"))
    pg = Postgres(bin_dir=bin_dir, root=root, port=free_port(), password=secrets.token_hex(8))
    try:
        _initdb(pg)
        pg.start()
        pg.admin_execute(f"CREATE ROLE {pg.user} LOGIN PASSWORD '{pg.password}'")
        yield pg
    finally:
        if pg.running:
            try:
                pg.stop("fast")
            except (RuntimeError, subprocess.SubprocessError, OSError):
                pg.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)
