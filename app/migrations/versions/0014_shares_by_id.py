"""shares and share codes keep their scopes without a filter: the filter is made from
the server (by id) as named when read, so a rename carries a share and a new user of
an old name gets none

Revision ID: 0014
Revises: 0012

"""

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

TABLES = ("shares", "share_codes")


def _rewrite(table: str, change: Any) -> None:
    conn = op.get_bind()
    rows = conn.execute(sa.text(f"SELECT id, scopes FROM {table}")).all()
    for row_id, scopes in rows:
        old = json.loads(scopes) if isinstance(scopes, str) else scopes
        new = change(row_id, old)
        if new != old:
            conn.execute(
                sa.text(f"UPDATE {table} SET scopes = :scopes WHERE id = :id"),
                {"scopes": json.dumps(new), "id": row_id},
            )


def upgrade() -> None:
    for table in TABLES:
        _rewrite(table, lambda _id, scopes: sorted({s.partition("!")[0] for s in scopes}))


def downgrade() -> None:
    conn = op.get_bind()
    for table in TABLES:
        # The filter of each row's server, as named now.
        names = dict(
            conn.execute(
                sa.text(
                    f"SELECT t.id, u.name || '/' || s.name FROM {table} t "
                    "JOIN servers s ON s.id = t.server_id JOIN users u ON u.id = s.user_id"
                )
            ).all()
        )
        _rewrite(
            table,
            lambda row_id, scopes, names=names: [f"{s}!server={names[row_id]}" for s in scopes],
        )
