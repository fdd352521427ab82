"""What app/ and proxy/ import is declared in setup.cfg, each declaration has a floor and
a cap, requirements.lock (what ./test and CI install) satisfies every one of them, and
each floor is a tested version: .ci/floors.txt (what .ci/test-floors runs the tests
with) pins it, or for a tool it leaves out, requirements.lock does."""

from __future__ import annotations

import ast
import configparser
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.helpers import REPO

# Imported only for type checking (typeshed's stubs), never at run time.
TYPING_ONLY = {"_typeshed"}


def _declared(extras: tuple[str, ...] | None = None) -> dict[str, Requirement]:
    """install_requires and the extras named (default: all of them)."""
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    lines = config["options"]["install_requires"].splitlines()
    for name, extra in config["options.extras_require"].items():
        if extras is None or name in extras:
            lines += extra.splitlines()
    requirements = [Requirement(line) for line in lines if line.strip()]
    return {canonicalize_name(r.name): r for r in requirements}


def _floors() -> dict[str, str]:
    """What .ci/floors.txt pins."""
    lines = (REPO / ".ci" / "floors.txt").read_text().splitlines()
    pins = [Requirement(line) for line in lines if line.strip() and not line.startswith("#")]
    return {canonicalize_name(r.name): next(iter(r.specifier)).version for r in pins}


def _locked() -> dict[str, str]:
    lines = (REPO / "requirements.lock").read_text().splitlines()
    pins = [line.split("==") for line in lines if line and not line.startswith("#")]
    return {canonicalize_name(name): version for name, version in pins}


def _imported_modules() -> set[str]:
    """Top-level names of the modules app/ and proxy/ import (absolute imports)."""
    found = set()
    for path in [*Path(REPO / "app").rglob("*.py"), *Path(REPO / "proxy").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found - {"app", "proxy", "__future__"} - set(sys.stdlib_module_names) - TYPING_ONLY


def test_every_imported_package_is_declared() -> None:
    distributions = packages_distributions()
    declared = _declared()
    undeclared = {
        module: distributions.get(module)
        for module in _imported_modules()
        if not any(canonicalize_name(d) in declared for d in distributions.get(module, []))
    }
    assert undeclared == {}


@pytest.mark.parametrize("name", sorted(_declared()))
def test_a_declared_package_has_a_floor_and_a_cap_the_lock_satisfies(name: str) -> None:
    requirement = _declared()[name]
    operators = {spec.operator for spec in requirement.specifier}
    assert ">=" in operators and "<" in operators, requirement
    assert requirement.specifier.contains(_locked()[name]), (requirement, _locked()[name])


def test_every_run_time_package_s_floor_is_run_by_the_floors_tests() -> None:
    assert set(_declared(extras=("postgres",))) - set(_floors()) == set()


@pytest.mark.parametrize("name", sorted(_declared()))
def test_a_declared_floor_is_a_tested_version(name: str) -> None:
    floor = next(s.version for s in _declared()[name].specifier if s.operator == ">=")
    tested = _floors().get(name) or _locked()[name]
    assert Version(floor) == Version(tested), (_declared()[name], tested)


@pytest.mark.parametrize(
    "line", tomllib.loads((REPO / "pyproject.toml").read_text())["build-system"]["requires"]
)
def test_a_build_requirement_has_a_floor_and_a_cap(line: str) -> None:
    operators = {spec.operator for spec in Requirement(line).specifier}
    assert ">=" in operators and "<" in operators, line
