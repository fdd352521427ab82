"""Fixtures for unit tests.

- ``make_app(**overrides)``: a hub app (``create_app``) on a migrated SQLite
  file in tmp_path; nothing listens on its proxy API port. (``clean_env`` is in
  tests/conftest.py.)
- ``db``: a ``Database`` on a fresh SQLite file (``db_path``) migrated to the
  current schema, for testing domain services directly.
- ``grants``: the hub's HubGrants over ``db`` and default settings: what an
  ``Identity`` built without an app reads its owner's scopes from.
- ``make_token(app, name, admin=False, scopes=())``: a new API token of a user
  (created if new): the one place unit tests make tokens.
- ``log_in(client, name, next=None)``: sign in through the login form, as a
  browser does; returns the form's response.
- Passwords are hashed with argon2 at its cheapest cost (for the whole session): at
  the production cost each hash takes a large part of a second. A test of hashing
  itself asks for ``production_argon2``.
- No Docker engine: the process's engine client (``docker_client()``) is one that
  answers nothing, and says so; a test that needs an engine's answers gives a fake
  client. (Some used to reach a real engine when one answered, and failed without one.)
- The apps share, for the session, what each would otherwise make again the same:
  werkzeug's compiled URL rules, SQLAlchemy's compiled statements (one SQLite
  dialect) and Jinja's compiled templates (most of a unit test's CPU before).
"""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from jinja2.bccache import Bucket, BytecodeCache
from sqlalchemy import Engine
from sqlalchemy.util import LRUCache
from werkzeug.test import TestResponse

from app import create_app
from app import db as db_module
from app.auth import authenticators
from app.config import get_settings, load
from app.db import Database
from app.grants import HubGrants
from app.groups import GroupService
from app.migrations import upgrade
from app.roles import RoleService
from app.spawners import docker as docker_spawners
from app.tokens import get_tokens
from app.users import get_users
from tests.helpers import BrowserClient, free_port, xsrf_token

PRODUCTION_HASHER = authenticators._hasher


@functools.cache
def _cheap_hasher() -> Any:
    from argon2 import PasswordHasher

    return PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


class NoEngine:
    """The unit tier's Docker client: any use fails, naming the way out."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(
            f"a unit test asked the Docker engine ({name}): give it a fake client "
            "(monkeypatch DockerSpawner.client or app.spawners.docker.docker_client)"
        )


@pytest.fixture(autouse=True)
def _no_docker_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(docker_spawners, "_clients", {os.getpid(): NoEngine()})
    monkeypatch.setattr(docker_spawners, "_cgroup_drivers", {})  # each test's engine's own


@pytest.fixture(scope="session", autouse=True)
def _cheap_argon2() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(authenticators, "_hasher", _cheap_hasher)
        yield


@pytest.fixture(scope="session", autouse=True)
def _url_rules_compiled_once() -> Iterator[None]:
    """Each app compiles each of its ~100 URL rules (werkzeug parses the rule and makes
    Python code for its builders), most of create_app's time; the same rule on the
    same converters compiles to the same parts, so the unit tests' apps share them.
    Only the converters are the map's own (copies bound to it)."""
    from werkzeug.routing.rules import Rule

    if not all(hasattr(Rule, a) for a in ("_parse_rule", "_compile_builder")):
        yield  # another werkzeug (requirements.lock pins it): each app compiles its own
        return
    compile_rule = Rule.compile
    compiled: dict[tuple[Any, ...], tuple[Any, ...]] = {}

    def once(self: Rule) -> None:
        key = (
            *(self.rule, self.subdomain, self.host, self.merge_slashes, self.map.host_matching),
            repr(sorted((self.defaults or {}).items())),  # resolved into the builders
            tuple(self.map.converters.items()),
        )
        if key not in compiled:
            before = set(self.arguments)
            compile_rule(self)
            compiled[key] = (
                *(self._parts, self._trace, self._converters, self.arguments - before),
                *(self._build.__func__, self._build_unknown.__func__),  # type: ignore[attr-defined]
            )
            return
        parts, trace, converters, arguments, build, build_unknown = compiled[key]
        self._parts, self._trace = parts, trace
        self._converters = {name: _bound(c, self.map) for name, c in converters.items()}
        self.arguments |= arguments
        self._build = build.__get__(self)
        self._build_unknown = build_unknown.__get__(self)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Rule, "compile", once)
        yield


def _bound(converter: Any, url_map: Any) -> Any:
    """A copy of a URL converter, bound to another map."""
    copy = object.__new__(type(converter))
    copy.__dict__.update(converter.__dict__, map=url_map)
    return copy


@pytest.fixture(scope="session", autouse=True)
def _sql_compiled_once() -> Iterator[None]:
    """SQLAlchemy compiles each statement once per engine (its cache is keyed by the
    dialect object), most of a unit test's time on a new app's first requests; the
    unit tests' SQLite engines share one dialect and its compiled statements, as a
    hub process's requests share its one engine."""
    make_engine = db_module.make_engine
    shared: dict[str, Any] = {}

    def sharing(url: str) -> Engine:
        engine = make_engine(url)
        if engine.dialect.name == "sqlite":
            first = shared.setdefault("sqlite", (engine.dialect, LRUCache(5000)))
            engine.dialect, engine._compiled_cache = first
        return engine

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(db_module, "make_engine", sharing)
        yield


@pytest.fixture
def production_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    """Passwords hashed as the hub hashes them (tests of hashing itself)."""
    monkeypatch.setattr(authenticators, "_hasher", PRODUCTION_HASHER)


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file the migrations brought to the current schema, once per session:
    tests start from a copy (the migrations themselves run on every integration hub)."""
    path = tmp_path_factory.mktemp("schema") / "flaskhub.sqlite"
    upgrade(f"sqlite:///{path}")
    return path


class _CompiledTemplates(BytecodeCache):
    """Jinja's code of each template, kept for the session: the unit tests' apps have
    one Jinja environment each, which would compile every template it renders again
    (Jinja checks each template's source against the code it keeps)."""

    def __init__(self) -> None:
        self.code: dict[str, bytes] = {}

    def load_bytecode(self, bucket: Bucket) -> None:
        if bucket.key in self.code:
            bucket.bytecode_from_string(self.code[bucket.key])

    def dump_bytecode(self, bucket: Bucket) -> None:
        self.code[bucket.key] = bucket.bytecode_to_string()


_TEMPLATES = _CompiledTemplates()


@pytest.fixture
def make_app(clean_env: Path, migrated_sqlite: Path) -> Callable[..., Flask]:
    def _make(**overrides: Any) -> Flask:
        data_dir = clean_env / "data"
        data_dir.mkdir(exist_ok=True)
        if not (data_dir / "flaskhub.sqlite").exists():
            shutil.copyfile(migrated_sqlite, data_dir / "flaskhub.sqlite")
        # The hub's own account for every server: no test makes system accounts by accident.
        base = {"data_dir": str(data_dir), "proxy_api_port": free_port(), "spawner": "simple"}
        app = create_app({**base, **overrides})
        app.test_client_class = BrowserClient
        app.jinja_env.bytecode_cache = _TEMPLATES
        if get_settings(app).db_url != f"sqlite:///{data_dir / 'flaskhub.sqlite'}":
            upgrade(get_settings(app).db_url)
        return app

    return _make


@pytest.fixture
def db_path(tmp_path: Path, migrated_sqlite: Path) -> Path:
    """A fresh SQLite file with the schema of the migrations."""
    path = tmp_path / "hub.sqlite"
    shutil.copyfile(migrated_sqlite, path)
    return path


@pytest.fixture
def db(db_path: Path) -> Database:
    """A Database on db_path, for testing domain services directly."""
    return Database(f"sqlite:///{db_path}")


@pytest.fixture
def grants(db: Database, tmp_path: Path) -> HubGrants:
    """The hub's grants over `db`, with the default settings."""
    settings = load(environ={}, overrides={"data_dir": str(tmp_path / "data")})
    return HubGrants(db, settings, RoleService(db), GroupService(db))


@pytest.fixture
def make_token() -> Callable[..., str]:
    def _make(app: Flask, name: str, *, admin: bool = False, scopes: Iterable[str] = ()) -> str:
        user = get_users(app).get_or_create(name, admin=admin)
        token, _row = get_tokens(app).create(user.id, scopes=list(scopes))
        return token

    return _make


@pytest.fixture
def log_in() -> Callable[..., TestResponse]:
    def _log_in(client: FlaskClient, name: str, next: str | None = None) -> TestResponse:
        form = {
            "username": name,
            "password": "",
            "_xsrf": xsrf_token(client.get("/hub/login").text),
        }
        if next is not None:
            form["next"] = next
        return client.post("/hub/login", data=form)

    return _log_in
