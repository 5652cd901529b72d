"""`entrepot init`: create or upgrade the schema, idempotently."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text

from entrepot.db.engine import get_engine
from entrepot.db.registry import load_all_models
from entrepot.db.rls import apply_row_level_security
from entrepot.db.settings import get_settings

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def init_database(url: str | None = None) -> None:
    """Upgrade to the newest schema, then (PostgreSQL) apply roles, grants and RLS."""
    url = url or get_settings().database_url
    load_all_models()
    engine = get_engine(url)
    cfg = alembic_config(url)
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # One initialiser at a time (several API processes may start together).
            conn.execute(text("SELECT pg_advisory_xact_lock(7431001)"))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "heads")
        if conn.dialect.name == "postgresql":
            apply_row_level_security(conn, get_settings().db_app_role)
