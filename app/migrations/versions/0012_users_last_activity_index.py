"""an index on users.last_activity (the active users of a metrics scrape, without a
scan of every user)

Revision ID: 0012
Revises: 0011

"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.create_index(batch.f("ix_users_last_activity"), ["last_activity"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_index(batch.f("ix_users_last_activity"))
