"""services created through the API (JupyterHub 5's dynamic services); oauth_clients.service_name

Revision ID: 0010
Revises: 0009

"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "services",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("admin", sa.Boolean(), server_default="0", nullable=False),
        sa.Column("url", sa.String(length=1023), server_default="", nullable=False),
        sa.Column("api_token_hash", sa.String(length=64), nullable=True),
        sa.Column("oauth_client_id", sa.String(length=255), nullable=True),
        sa.Column("oauth_redirect_uri", sa.String(length=1023), server_default="", nullable=False),
        sa.Column("oauth_client_allowed_scopes", sa.JSON(), nullable=False),
        sa.Column("oauth_no_confirm", sa.Boolean(), server_default="0", nullable=False),
        sa.Column("info", sa.JSON(), nullable=False),
        sa.Column("display", sa.Boolean(), server_default="1", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_services")),
    )
    with op.batch_alter_table("services") as batch:
        batch.create_index(batch.f("ix_services_name"), ["name"], unique=True)
        batch.create_index(batch.f("ix_services_api_token_hash"), ["api_token_hash"], unique=True)
    with op.batch_alter_table("oauth_clients") as batch:
        batch.add_column(sa.Column("service_name", sa.String(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("oauth_clients") as batch:
        batch.drop_column("service_name")
    with op.batch_alter_table("services") as batch:
        batch.drop_index(batch.f("ix_services_api_token_hash"))
        batch.drop_index(batch.f("ix_services_name"))
    op.drop_table("services")
