"""Disk full and a read-only database (SQLite): fail closed, 503, nothing released, no
index handed out; and what it takes to recover.

Disk full is real when this process may mount a tmpfs (root in this sandbox): the
database lives on a 8 MiB tmpfs that a filler file then fills. It is also emulated, for
environments that cannot mount, with ``PRAGMA max_page_count`` on the audit writer's
connections (SQLite then fails exactly as on a full disk: SQLITE_FULL).

Read-only is real too: the database file is made immutable (``chattr +i``; root ignores
mode bits) or mode 0444 (non-root), so SQLite can only open it read-only.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from tests.reliability.conftest import (
    FaultGateway,
    assert_nothing_released,
    can_mount_tmpfs,
    fill_up,
    read_only,
    tiny_tmpfs,
)


def _fails_closed(
    gw: FaultGateway, stored_before: list[int], *, readiness_sees_it: bool = True
) -> None:
    for _ in range(2):
        response = gw.read_case()
        assert response.status_code == 503, response.text
        assert_nothing_released(response)
        assert "X-Audit-Index" not in response.headers
    assert gw.stored_indices() == stored_before  # nothing was written, no index consumed
    if readiness_sees_it:
        ready = gw.client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["audit"]["ok"] is False


@contextlib.contextmanager
def _page_limit(gw: FaultGateway) -> Iterator[Callable[[bool], None]]:
    """The audit writer's connections may not grow the database (SQLITE_FULL)."""
    engine = gw.runtime.audit_writer.engine
    limited = [False]

    def on_connect(dbapi_conn: Any, _: Any) -> None:
        if limited[0]:
            cursor = dbapi_conn.cursor()
            pages = cursor.execute("PRAGMA page_count").fetchone()[0]
            cursor.execute(f"PRAGMA max_page_count = {pages}")
            cursor.close()

    def switch(on: bool) -> None:
        limited[0] = on
        engine.dispose()  # the next batch connects afresh, with or without the limit

    event.listen(engine, "connect", on_connect)
    try:
        yield switch
    finally:
        event.remove(engine, "connect", on_connect)


@pytest.mark.parametrize("how", ["tmpfs", "max_page_count"])
def test_disk_full_fails_closed_and_recovers(
    how: str, tmp_path: Path, fault_gateway: Callable[..., FaultGateway]
) -> None:
    with contextlib.ExitStack() as stack:
        directory = tmp_path / "db"
        if how == "tmpfs":
            if not can_mount_tmpfs():
                pytest.skip("mounting a tmpfs needs root (the max_page_count case emulates it)")
            stack.enter_context(tiny_tmpfs(directory, "8m"))
        else:
            directory.mkdir()
        database = directory / "gateway.db"
        gw = fault_gateway(f"sqlite:///{database}", client_cache_seconds=300.0)
        assert gw.read_case().status_code == 200

        if how == "tmpfs":
            # Empty the WAL so that the next commit must allocate, then fill the disk.
            with contextlib.closing(sqlite3.connect(database)) as conn:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            filler = fill_up(directory)
            # Readiness probes the write lock, which a full disk still grants: a full disk
            # shows as 503s and the writer's error log, not as unreadiness.
            _fails_closed(gw, gw.stored_indices(), readiness_sees_it=False)
            filler.unlink()
        else:
            switch = stack.enter_context(_page_limit(gw))
            switch(True)
            # The last pages' free room still takes a few entries: the disk fills under load.
            for _ in range(200):
                response = gw.read_case()
                if response.status_code != 200:
                    break
            assert response.status_code == 503, response.text
            # Readiness probes the write lock, which a full disk still grants: a full disk
            # shows as 503s and the writer's error log, not as unreadiness.
            _fails_closed(gw, gw.stored_indices(), readiness_sees_it=False)
            switch(False)
        assert "full" in (gw.runtime.audit_writer.last_error or "")
        last = gw.stored_indices()[-1]

        response = gw.read_case()
        assert response.status_code == 200, response.text
        assert int(response.headers["X-Audit-Index"]) == last + 1
        assert gw.client.get("/readyz").status_code == 200
        gw.assert_log_whole()


@pytest.fixture
def read_only_gateway(
    tmp_path: Path, fault_gateway: Callable[..., FaultGateway]
) -> Iterator[tuple[FaultGateway, Callable[[], None]]]:
    """A gateway (re)started while its database file is read-only; and how to fix it."""
    with contextlib.ExitStack() as stack:
        database = tmp_path / "db" / "gateway.db"
        database.parent.mkdir()
        gw = fault_gateway(
            f"sqlite:///{database}",
            client_cache_seconds=300.0,
            before_start=lambda: stack.enter_context(read_only(database)),
        )
        yield gw, stack.close


def test_read_only_database_fails_closed(
    read_only_gateway: tuple[FaultGateway, Callable[[], None]],
) -> None:
    gw, _ = read_only_gateway
    _fails_closed(gw, gw.stored_indices())
    assert "readonly" in (gw.runtime.audit_writer.last_error or "")


def test_read_only_database_recovers_once_writable(
    read_only_gateway: tuple[FaultGateway, Callable[[], None]],
) -> None:
    gw, make_writable = read_only_gateway
    assert gw.read_case().status_code == 503
    make_writable()
    deadline = time.monotonic() + 2.0
    while (status := gw.read_case().status_code) != 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert status == 200


def test_readiness_sees_a_read_only_database_before_any_request(
    read_only_gateway: tuple[FaultGateway, Callable[[], None]],
) -> None:
    gw, _ = read_only_gateway
    assert gw.client.get("/readyz").status_code == 503


def test_readiness_does_not_leak_internals(
    read_only_gateway: tuple[FaultGateway, Callable[[], None]],
) -> None:
    gw, _ = read_only_gateway
    assert gw.read_case().status_code == 503
    body = gw.client.get("/readyz").text
    court = gw.gateway.clients["court"].client_id
    leaks = [word for word in (court, "INSERT", "BEGIN", "[SQL", "[parameters") if word in body]
    assert leaks == []
