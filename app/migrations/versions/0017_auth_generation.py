"""auth_generation: one counter that the database itself moves, by triggers, in the same
transaction as any change that decides who a credential is or what it may do (a token
revoked, a user deleted, renamed or no longer admin, a login ended, a role, group,
membership, share or service changed), so that hub processes may keep identities
between requests and check them with one read (app.identities)

Revision ID: 0017
Revises: 0016

Triggers, not code: every writer moves the counter, including the replicas of the
version before during a rolling upgrade, raw SQL and the database's own cascades.
A later migration that has SQLite copy one of these tables (a batch operation that
recreates it) drops its triggers with it and must create them again:
tests/unit/test_identities.py fails until it does.
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

TABLE = "auth_generation"
PG_FUNCTION = "flaskhub_auth_generation_bump"

# (table, event, the columns an UPDATE must set to count) for each trigger. INSERTs of
# users, tokens, groups and servers need none: nothing kept refers to a new row yet.
# An UPDATE trigger on users fires only when a value really changed (a login sets admin
# again to what it was); the other tables' UPDATEs of those columns are rare.
TRIGGERS: list[tuple[str, str, tuple[str, ...]]] = [
    ("users", "DELETE", ()),
    ("users", "UPDATE", ("name", "admin", "cookie_id")),
    ("api_tokens", "DELETE", ()),
    (
        "api_tokens",
        "UPDATE",
        ("hashed", "user_id", "server_id", "client_id", "scopes", "expires_at"),
    ),
    ("servers", "DELETE", ()),
    ("servers", "UPDATE", ("name", "user_id")),
    ("groups", "DELETE", ()),
    ("groups", "UPDATE", ("name",)),
    *(
        (table, event, ())
        for table in (
            "roles",
            "user_role_map",
            "group_role_map",
            "service_role_map",
            "user_group_map",
            "shares",
            "services",
        )
        for event in ("INSERT", "UPDATE", "DELETE")
    ),
]
CHANGED_ONLY = {"users"}


def trigger_name(table: str, event: str) -> str:
    return f"{TABLE}_{table}_{event.lower()}"


def _sqlite(table: str, event: str, columns: tuple[str, ...]) -> str:
    of = f" OF {', '.join(columns)}" if columns else ""
    when = ""
    if table in CHANGED_ONLY and columns:
        when = " WHEN " + " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in columns)
    return (
        f"CREATE TRIGGER {trigger_name(table, event)} AFTER {event}{of} ON {table}{when} "
        f"BEGIN UPDATE {TABLE} SET value = value + 1 WHERE id = 1; END"
    )


def _postgresql(table: str, event: str, columns: tuple[str, ...]) -> str:
    of = f" OF {', '.join(columns)}" if columns else ""
    when = ""
    if table in CHANGED_ONLY and columns:
        when = " WHEN (" + " OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c in columns) + ")"
    return (
        f"CREATE TRIGGER {trigger_name(table, event)} AFTER {event}{of} ON {table} "
        f"FOR EACH ROW{when} EXECUTE PROCEDURE {PG_FUNCTION}()"
    )


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{TABLE}")),
    )
    op.execute(f"INSERT INTO {TABLE} (id, value) VALUES (1, 0)")
    postgresql = op.get_bind().dialect.name == "postgresql"
    if postgresql:
        op.execute(
            f"CREATE FUNCTION {PG_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN UPDATE {TABLE} SET value = value + 1 WHERE id = 1; RETURN NULL; END $$"
        )
    for table, event, columns in TRIGGERS:
        op.execute((_postgresql if postgresql else _sqlite)(table, event, columns))


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for table, event, _columns in TRIGGERS:
        on = f" ON {table}" if postgresql else ""
        op.execute(f"DROP TRIGGER {trigger_name(table, event)}{on}")
    if postgresql:
        op.execute(f"DROP FUNCTION {PG_FUNCTION}()")
    op.drop_table(TABLE)
