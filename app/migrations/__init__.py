"""Alembic migrations of the FlaskHub database."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

HERE = Path(__file__).parent


def alembic_config(db_url: str) -> Config:
    """An Alembic Config for this package's scripts and the given database."""
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    cfg.set_main_option("sqlalchemy.url", db_url.replace("%", "%%"))
    return cfg


def upgrade(db_url: str, revision: str = "head") -> None:
    """Bring the database schema up to date (run once, before workers start)."""
    command.upgrade(alembic_config(db_url), revision)
