"""JupyterHub 6's fields: a server's display_name, a user's user_info (from the
authenticator: a name, initials, an avatar to show)

Revision ID: 0015
Revises: 0014

"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("servers") as batch:
        batch.add_column(
            sa.Column("display_name", sa.String(length=255), nullable=False, server_default="")
        )
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("user_info", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("user_info")
    with op.batch_alter_table("servers") as batch:
        batch.drop_column("display_name")
