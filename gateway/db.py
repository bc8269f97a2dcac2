"""Database engine, sessions and the typed declarative base.

The gateway uses SQLAlchemy's synchronous engine: the hot exchange path touches
the database only through the audit writer's own thread, and admin routes run in
the threadpool. SQLite runs in WAL mode with ``synchronous=FULL`` so that a
committed audit entry survives power loss; PostgreSQL keeps ``synchronous_commit``
at its default (on).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Engine, MetaData, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

__all__ = [
    "Base",
    "UTCDateTime",
    "create_db_engine",
    "is_sqlite",
    "make_session_factory",
    "ping",
    "session_scope",
    "utcnow",
]

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both SQLite (which drops tzinfo) and PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given where UTC is required")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def create_db_engine(
    url: str,
    *,
    pool_size: int = 5,
    sqlite_begin: str = "BEGIN",
    sqlite_temp_in_memory: bool = False,
) -> Engine:
    """An engine with the gateway's connection settings.

    ``sqlite_begin`` lets a writer that must serialise with other processes take the
    write lock up front (``BEGIN IMMEDIATE``) instead of on its first write.

    ``sqlite_temp_in_memory`` keeps SQLite's temporary files in memory. An INSERT of several
    rows inside a transaction keeps a statement journal (the pages it changed, to undo it
    alone if it fails partway), spilled to a file in /var/tmp past 64 KiB: the audit writer's
    batches opened, wrote (~40 pages) and deleted one per batch. Only for connections whose
    statements are bounded (the writer's batches); a regulator's large sort would then be held
    in memory whole, so the default engine keeps the default.
    """
    if is_sqlite(url):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _: Any) -> None:
            # Let SQLAlchemy's BEGIN statements drive transactions (pysqlite's implicit
            # transactions would defer BEGIN and break BEGIN IMMEDIATE).
            dbapi_conn.isolation_level = None
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            if sqlite_temp_in_memory:
                cursor.execute("PRAGMA temp_store=MEMORY")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            conn.exec_driver_sql(sqlite_begin)

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return create_engine(url, pool_size=pool_size, pool_pre_ping=True)


def create_command_engine(url: str) -> Engine:
    """An engine for a CLI command that reads and then writes (is the name taken? which row to
    change?) against a database a running gateway commits to all the time (its audit writer).

    On SQLite a transaction that has read cannot then wait for the write lock: if another
    connection committed in between, its first write fails at once ("database is locked").
    So each transaction takes the lock first (``BEGIN IMMEDIATE``) and waits its turn within
    the busy timeout. A command's transactions are short; PostgreSQL is unchanged.
    """
    return create_db_engine(url, sqlite_begin="BEGIN IMMEDIATE")


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def ping(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
