"""users.provider_issuer and users.provider_subject: the identity provider's account a
user is bound to at their first login through it (a name never changes hands)

Revision ID: 0013
Revises: 0012

"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("provider_issuer", sa.Text(), nullable=True))
        batch.add_column(sa.Column("provider_subject", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("provider_subject")
        batch.drop_column("provider_issuer")
