"""What app/ and proxy/ import is declared in setup.cfg, each declaration has a floor and
a cap, and requirements.lock (what ./test and CI install) satisfies every one of them."""

from __future__ import annotations

import ast
import configparser
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.helpers import REPO

# Imported only for type checking (typeshed's stubs), never at run time.
TYPING_ONLY = {"_typeshed"}


def _declared() -> dict[str, Requirement]:
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    lines = config["options"]["install_requires"].splitlines()
    for extra in config["options.extras_require"].values():
        lines += extra.splitlines()
    requirements = [Requirement(line) for line in lines if line.strip()]
    return {canonicalize_name(r.name): r for r in requirements}


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
