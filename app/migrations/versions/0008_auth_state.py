"""users.encrypted_auth_state and users.auth_refreshed: the provider's tokens, encrypted

Revision ID: 0008
Revises: 0007

"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("encrypted_auth_state", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("auth_refreshed", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("auth_refreshed")
        batch.drop_column("encrypted_auth_state")
