"""users.storage_id: the stable key of a user's files (homes, volumes), never their name

Revision ID: 0004
Revises: 0003

"""

import uuid

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("storage_id", sa.String(length=32), nullable=True))
    users = sa.table("users", sa.column("id", sa.Integer), sa.column("storage_id", sa.String))
    connection = op.get_bind()
    for (user_id,) in connection.execute(sa.select(users.c.id)).all():
        connection.execute(
            users.update().where(users.c.id == user_id).values(storage_id=uuid.uuid4().hex)
        )
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.alter_column("storage_id", existing_type=sa.String(length=32), nullable=False)
        batch_op.create_unique_constraint(batch_op.f("uq_users_storage_id"), ["storage_id"])


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_users_storage_id"), type_="unique")
        batch_op.drop_column("storage_id")
