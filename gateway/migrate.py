"""Running the Alembic migrations from code (CLI, demo, tests): the only way the schema is made."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext

from gateway.db import create_db_engine
from gateway.settings import Settings

__all__ = ["alembic_config", "current_revision", "upgrade"]


def alembic_config(settings: Settings, url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(settings.migrations_dir))
    # configparser interpolates "%": escape it (percent-encoded URL options use it).
    config.set_main_option(
        "sqlalchemy.url", (url or settings.resolved_database_url).replace("%", "%%")
    )
    return config


def upgrade(settings: Settings, revision: str = "head", url: str | None = None) -> None:
    url = url or settings.resolved_database_url
    if url.startswith("sqlite:///"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_db_engine(url)
    try:
        with engine.begin() as connection:
            config = alembic_config(settings, url)
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    finally:
        engine.dispose()


def current_revision(settings: Settings) -> str | None:
    engine = create_db_engine(settings.resolved_database_url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()
