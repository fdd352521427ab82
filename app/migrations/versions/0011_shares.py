"""shares and share_codes (JupyterHub 5's sharing of one server with users and groups)

Revision ID: 0011
Revises: 0010

"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def _common() -> list[sa.Column]:
    return [
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("server_id", sa.Integer(), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
    ]


def _keys(table: str, *columns: tuple[str, str]) -> list[sa.ForeignKeyConstraint]:
    return [
        sa.ForeignKeyConstraint(
            [column],
            [f"{target}.id"],
            name=op.f(f"fk_{table}_{column}_{target}"),
            ondelete="CASCADE",
        )
        for column, target in columns
    ]


def upgrade() -> None:
    op.create_table(
        "shares",
        *_common(),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("group_id", sa.Integer(), nullable=True),
        *_keys(
            "shares",
            ("owner_id", "users"),
            ("server_id", "servers"),
            ("user_id", "users"),
            ("group_id", "groups"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shares")),
    )
    with op.batch_alter_table("shares") as batch:
        batch.create_index(batch.f("ix_shares_server_id"), ["server_id"], unique=False)
        batch.create_index(batch.f("ix_shares_user_id"), ["user_id"], unique=False)
        batch.create_index(batch.f("ix_shares_group_id"), ["group_id"], unique=False)
    op.create_table(
        "share_codes",
        *_common(),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("hashed", sa.String(length=64), nullable=False),
        sa.Column("exchange_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_exchanged_at", sa.DateTime(), nullable=True),
        *_keys("share_codes", ("owner_id", "users"), ("server_id", "servers")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_share_codes")),
    )
    with op.batch_alter_table("share_codes") as batch:
        batch.create_index(batch.f("ix_share_codes_hashed"), ["hashed"], unique=True)


def downgrade() -> None:
    op.drop_table("share_codes")
    op.drop_table("shares")
