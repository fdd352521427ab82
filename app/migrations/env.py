"""Alembic environment: the URL comes from FlaskHub's settings (or the caller's config)."""

from alembic import context
from sqlalchemy import create_engine, text

from app.models import Base

config = context.config
url = config.get_main_option("sqlalchemy.url")
# pg_advisory_xact_lock key of migrations (any constant bigint; not the write lock's key,
# app.db): hub replicas that start together migrate one after another, and the second
# then finds nothing to do, not another's half-made schema.
LOCK = 0x464C534B4D494752  # "FLSKMIGR"


def run_migrations_offline() -> None:
    context.configure(url=url, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = create_engine(url)
    with engine.connect() as connection:
        # Batch mode: SQLite cannot ALTER most things in place.
        context.configure(
            connection=connection, target_metadata=Base.metadata, render_as_batch=True
        )
        with context.begin_transaction():
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK})
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
