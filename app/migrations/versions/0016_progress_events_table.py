"""progress events in a table of their own, appended one row each (they were a JSON
list rewritten with every event)

Revision ID: 0016
Revises: 0015

"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "progress_events",
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("server_id", sa.Integer(), nullable=False),
        sa.Column("event", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["server_id"],
            ["servers.id"],
            name=op.f("fk_progress_events_server_id_servers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_progress_events")),
        sqlite_autoincrement=True,
    )
    op.create_index(
        op.f("ix_progress_events_server_id"), "progress_events", ["server_id"], unique=False
    )
    # The events of spawns that are over: nothing reads them once a spawn has ended.
    with op.batch_alter_table("servers") as batch:
        batch.drop_column("progress_events")


def downgrade() -> None:
    with op.batch_alter_table("servers") as batch:
        batch.add_column(
            sa.Column("progress_events", sa.JSON(), nullable=False, server_default="[]")
        )
    op.drop_index(op.f("ix_progress_events_server_id"), table_name="progress_events")
    op.drop_table("progress_events")
