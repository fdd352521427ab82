"""roles and who holds them (users, groups, services)

Revision ID: 0007
Revises: 0006

"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "roles",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_roles")),
    )
    with op.batch_alter_table("roles") as batch:
        batch.create_index(batch.f("ix_roles_name"), ["name"], unique=True)
    for table, column, key in (
        ("user_role_map", sa.Column("user_id", sa.Integer(), nullable=False), "users.id"),
        ("group_role_map", sa.Column("group_id", sa.Integer(), nullable=False), "groups.id"),
        ("service_role_map", sa.Column("service", sa.String(length=255), nullable=False), None),
    ):
        constraints = [
            sa.ForeignKeyConstraint(
                ["role_id"],
                ["roles.id"],
                name=op.f(f"fk_{table}_role_id_roles"),
                ondelete="CASCADE",
            ),
            sa.PrimaryKeyConstraint(column.name, "role_id", name=op.f(f"pk_{table}")),
        ]
        if key is not None:
            constraints.append(
                sa.ForeignKeyConstraint(
                    [column.name],
                    [key],
                    name=op.f(f"fk_{table}_{column.name}_{key.partition('.')[0]}"),
                    ondelete="CASCADE",
                )
            )
        op.create_table(
            table, column, sa.Column("role_id", sa.Integer(), nullable=False), *constraints
        )
        with op.batch_alter_table(table) as batch:
            batch.create_index(batch.f(f"ix_{table}_role_id"), ["role_id"], unique=False)


def downgrade() -> None:
    for table in ("service_role_map", "group_role_map", "user_role_map"):
        with op.batch_alter_table(table) as batch:
            batch.drop_index(batch.f(f"ix_{table}_role_id"))
        op.drop_table(table)
    with op.batch_alter_table("roles") as batch:
        batch.drop_index(batch.f("ix_roles_name"))
    op.drop_table("roles")
