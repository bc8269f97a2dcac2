"""Migrations are the only way the schema is made, and they make exactly the models' schema."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Column, MetaData, String, inspect

from gateway.db import create_db_engine
from gateway.migrate import alembic_config, current_revision, upgrade
from gateway.models import Base
from tests.conftest import make_settings


def _head(tmp_path: Path) -> str:
    settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'x.db'}")
    heads = ScriptDirectory.from_config(alembic_config(settings)).get_heads()
    assert len(heads) == 1, f"several migration heads: {heads}"
    return heads[0]


def test_one_linear_history(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'x.db'}")
    script = ScriptDirectory.from_config(alembic_config(settings))
    revisions = list(script.walk_revisions())
    assert revisions
    assert [r for r in revisions if r.down_revision is None] == [revisions[-1]]
    assert all(not r.is_merge_point for r in revisions)


def test_upgrade_matches_the_models(database_url: str, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, database_url)
    upgrade(settings)
    assert current_revision(settings) == _head(tmp_path)
    upgrade(settings)  # idempotent
    assert current_revision(settings) == _head(tmp_path)

    engine = create_db_engine(database_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection,
                opts={
                    "compare_type": True,
                    "render_as_batch": connection.dialect.name == "sqlite",
                },
            )
            diff = compare_metadata(context, Base.metadata)
            tables = set(inspect(connection).get_table_names())
            # The comparison is not vacuous: a model change would be noticed.
            altered = MetaData()
            for table in Base.metadata.sorted_tables:
                table.to_metadata(altered)
            altered.tables["oauth_clients"].append_column(Column("nickname", String(32)))
            assert compare_metadata(context, altered)
    finally:
        engine.dispose()
    assert diff == [], f"models and migrations disagree: {diff}"
    assert set(Base.metadata.tables) <= tables
    assert "oauth_clients" in tables


def test_downgrade_to_base_and_back(database_url: str, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, database_url)
    upgrade(settings)
    engine = create_db_engine(database_url)
    try:
        with engine.begin() as connection:
            config = alembic_config(settings, database_url)
            config.attributes["connection"] = connection
            command.downgrade(config, "base")
        with engine.connect() as connection:
            left = set(inspect(connection).get_table_names()) - {"alembic_version"}
        assert left == set()
    finally:
        engine.dispose()
    assert current_revision(settings) is None
    upgrade(settings)
    assert current_revision(settings) == _head(tmp_path)


def test_upgrade_creates_the_sqlite_data_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / "fresh" / "var"
    settings = make_settings(data_dir, None)  # type: ignore[arg-type]
    assert settings.resolved_database_url.endswith("fresh/var/gateway.db")
    upgrade(settings)
    assert (data_dir / "gateway.db").is_file()
    assert current_revision(settings) == _head(tmp_path)
