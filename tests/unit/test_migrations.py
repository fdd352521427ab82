"""Migrations a rolling upgrade can run: from 0016 on, each only adds.

During `docker service update` of the hubs (start-first), the first new replica
migrates while the replicas of the version before still serve on the same
database: a column or table they read must still be there. So a migration
only adds (tables, nullable or defaulted columns, indexes); what it no longer
needs is dropped by a later migration, two releases on, that says so
(`CONTRACTS = True`), when no replica of a version that used it can run.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

VERSIONS = Path(__file__).resolve().parents[2] / "app" / "migrations" / "versions"
# Before it, the rule was not kept (the hub was never upgraded rolling).
FIRST_ADDITIVE = 16
# What would take away something the version before reads or writes.
REMOVING = {"drop_column", "drop_table", "alter_column", "rename_table", "drop_constraint"}


def _additive() -> list[Path]:
    return sorted(p for p in VERSIONS.glob("[0-9]*.py") if int(p.name[:4]) >= FIRST_ADDITIVE)


def removals(source: str) -> list[str]:
    """The removing operations upgrade() calls, unless the module declares CONTRACTS."""
    tree = ast.parse(source)
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "CONTRACTS" for t in node.targets
        ):
            return []
    upgrade = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "upgrade")
    return [
        node.func.attr
        for node in ast.walk(upgrade)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in REMOVING
    ]


@pytest.mark.parametrize("migration", _additive(), ids=lambda p: p.name)
def test_a_migration_only_adds(migration: Path) -> None:
    assert removals(migration.read_text()) == []


def test_the_check_sees_a_dropped_column_in_a_batch() -> None:
    source = (
        "def upgrade():\n"
        "    with op.batch_alter_table('servers') as batch:\n"
        "        batch.drop_column('progress_events')\n"
    )
    assert removals(source) == ["drop_column"]
    assert removals("CONTRACTS = True\n" + source) == []
