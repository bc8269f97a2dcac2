"""Fixtures of the delivery tests: a migrated database, used as the application role."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from gateway.db import create_db_engine, make_session_factory
from gateway.migrate import upgrade
from gateway.standard import Standard, load_standard
from tests.conftest import make_settings
from tests.standard.conftest import STANDARD_DIR


@pytest.fixture(scope="session")
def standard() -> Standard:
    return load_standard(STANDARD_DIR)


@pytest.fixture
def delivery_db(database_url: str, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    """Sessions on a migrated database, as the gateway's application role on PostgreSQL."""
    yield from _migrated(database_url, tmp_path)


@pytest.fixture
def pg_delivery_db(postgres_url: str, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    """:func:`delivery_db` on PostgreSQL only."""
    yield from _migrated(postgres_url, tmp_path)


def _migrated(database_url: str, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    settings = make_settings(tmp_path, database_url)
    upgrade(settings)
    engine = create_db_engine(settings.resolved_database_url)
    try:
        yield make_session_factory(engine)
    finally:
        engine.dispose()


# The HTTP tests use the exchange tests' gateway wired to the five sample agency systems.
from tests.exchange.conftest import agency_urls, dataset, exchange_gateway  # noqa: E402

__all__ = ["agency_urls", "dataset", "exchange_gateway"]
