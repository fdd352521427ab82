"""progress events in a table of their own, appended one row each (they were a JSON
list rewritten with every event; the old column stays for the replicas of the version
before, during a rolling upgrade)

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
    # servers.progress_events stays (this version never reads it): during a rolling
    # upgrade the hub replicas of the version before go on reading and writing it.


def downgrade() -> None:
    op.drop_index(op.f("ix_progress_events_server_id"), table_name="progress_events")
    op.drop_table("progress_events")
