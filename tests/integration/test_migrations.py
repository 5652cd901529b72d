"""Migrations: from empty to head on both backends, and no drift from the models."""

import uuid

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from entrepot.db.base import Base
from entrepot.db.bootstrap import init_database
from entrepot.db.registry import load_all_models


def _fresh_url(db_url, tmp_path):
    if db_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path / 'fresh.db'}"
    import psycopg

    name = f"entrepot_mig_{uuid.uuid4().hex[:8]}"
    admin = db_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return db_url.rsplit("/", 1)[0] + f"/{name}"


def test_upgrade_from_empty_to_head_twice_and_no_autogenerate_diff(db_url, tmp_path):
    url = _fresh_url(db_url, tmp_path)
    init_database(url)
    init_database(url)  # idempotent
    load_all_models()
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(ctx, Base.metadata)
            assert diff == [], f"models and migrations differ: {diff}"
            assert set(Base.metadata.tables) <= set(inspect(conn).get_table_names())
    finally:
        engine.dispose()
        if not url.startswith("sqlite"):
            import psycopg

            admin = url.rsplit("/", 1)[0] + "/postgres"
            from entrepot.db.engine import dispose_engines

            dispose_engines()
            with psycopg.connect(admin.replace("+psycopg", ""), autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


def test_every_migration_goes_down_and_up_again(db_url, tmp_path):
    # given a database at head
    from alembic import command

    from entrepot.db.bootstrap import alembic_config

    url = _fresh_url(db_url, tmp_path)
    init_database(url)
    config = alembic_config(url)
    try:
        # when every migration is undone, one at a time, and the schema built again
        command.downgrade(config, "base")
        engine = create_engine(url)
        with engine.connect() as conn:
            left = set(inspect(conn).get_table_names()) - {"alembic_version"}
        engine.dispose()
        init_database(url)
        # then nothing was left behind by the way down, and head is head again
        assert left == set(), left
        load_all_models()
        engine = create_engine(url)
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
        engine.dispose()
        assert diff == [], diff
    finally:
        if not url.startswith("sqlite"):
            import psycopg

            from entrepot.db.engine import dispose_engines

            dispose_engines()
            admin = url.rsplit("/", 1)[0] + "/postgres"
            with psycopg.connect(admin.replace("+psycopg", ""), autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
