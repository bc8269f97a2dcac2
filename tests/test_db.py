"""SQLite write locks: why a transaction that reads and then writes takes the lock first.

The hazard itself, then the command engine that avoids it (``gateway.db.create_command_engine``,
used by ``gateway clients`` and ``gateway users``).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from gateway.db import create_command_engine, create_db_engine


def _table(path: Path) -> None:
    with sqlite3.connect(path, isolation_level=None) as setup:
        setup.execute("PRAGMA journal_mode=WAL")
        setup.execute("CREATE TABLE counter (n INTEGER)")
        setup.execute("INSERT INTO counter VALUES (0)")


def _read_commit_elsewhere_write(engine: Engine, path: Path) -> str:
    """Read, let another connection try to commit, then write: what the other one saw."""
    other = sqlite3.connect(path, isolation_level=None, timeout=0)
    try:
        with engine.begin() as conn:
            conn.execute(text("SELECT n FROM counter")).scalar_one()
            try:
                other.execute("INSERT INTO counter VALUES (1)")
                seen = "committed"
            except sqlite3.OperationalError:
                seen = "locked out"
            conn.execute(text("UPDATE counter SET n = n + 10"))
        return seen
    finally:
        other.close()
        engine.dispose()


def test_a_deferred_transaction_that_read_fails_its_write_after_another_commit(
    tmp_path: Path,
) -> None:
    path = tmp_path / "hazard.db"
    _table(path)
    with pytest.raises(OperationalError, match="database is locked"):
        _read_commit_elsewhere_write(create_db_engine(f"sqlite:///{path}"), path)


def test_the_command_engine_holds_the_write_lock_from_the_start(tmp_path: Path) -> None:
    path = tmp_path / "command.db"
    _table(path)
    seen = _read_commit_elsewhere_write(create_command_engine(f"sqlite:///{path}"), path)
    assert seen == "locked out"  # nothing commits between its read and its write
    with sqlite3.connect(path) as check:
        assert check.execute("SELECT n FROM counter").fetchall() == [(10,)]
