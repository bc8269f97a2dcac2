"""The live grants of one worker: windows, local approvals and revocations, refreshes, and
failing closed when the grants cannot be read."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from gateway.db import create_db_engine, make_session_factory
from gateway.policy.decision import Grant
from gateway.sharing.grants import GrantRegistry
from tests.conftest import make_settings

NOW = datetime(2026, 12, 7, 3, tzinfo=UTC)


def _grant(grant_id: str = "g1", **changes: object) -> Grant:
    fields: dict[str, object] = {
        "grant_id": grant_id, "requester_agency": "JC640104", "resource": "judgment",
        "fields": frozenset({"summary"}), "purpose": "EXECUTION_SUPERVISION",
        "case_id": "C00000006", "record_ids": None, "valid_from": NOW,
        "valid_until": NOW + timedelta(days=1), **changes,
    }  # fmt: skip
    return Grant(**fields)  # type: ignore[arg-type]


@pytest.fixture
def registry(tmp_path: Path) -> GrantRegistry:
    from gateway.migrate import upgrade

    settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'g.db'}")
    upgrade(settings)
    factory = make_session_factory(create_db_engine(settings.resolved_database_url))
    return GrantRegistry(factory, clock=lambda: NOW)


def test_only_grants_live_at_the_time_are_handed_out(registry: GrantRegistry) -> None:
    registry.add(_grant())
    assert registry.for_request("JC640104", "judgment", NOW) == (_grant(),)
    assert registry.for_request("JC640104", "judgment", NOW - timedelta(seconds=1)) == ()
    assert registry.for_request("JC640104", "judgment", NOW + timedelta(days=1)) == ()
    assert registry.for_request("JC640105", "judgment", NOW) == ()
    assert registry.for_request("JC640104", "person", NOW) == ()
    assert registry.is_live("g1", NOW)
    assert not registry.is_live("g1", NOW + timedelta(days=1))


def test_a_revocation_is_final_even_against_a_stale_refresh(registry: GrantRegistry) -> None:
    registry.add(_grant())
    registry.revoke("g1")
    assert registry.for_request("JC640104", "judgment", NOW) == ()
    # A refresh that still reads the grant as live (its row not yet revoked) keeps it out.
    registry._install([_grant()])
    assert registry.for_request("JC640104", "judgment", NOW) == ()
    registry.refresh()
    assert not registry.is_live("g1", NOW)


def test_a_refresh_keeps_an_approval_made_here_meanwhile(registry: GrantRegistry) -> None:
    registry.add(_grant("g2"))
    registry.refresh()  # the database has no row for it (this test): kept as just approved
    assert registry.is_live("g2", NOW)


def test_no_grant_counts_while_the_grants_cannot_be_read(registry: GrantRegistry) -> None:
    registry.add(_grant())
    registry.follow_interval_s = 0.01

    def broken() -> None:
        raise OperationalError("SELECT", {}, Exception("database is down"))

    registry.refresh = broken  # type: ignore[method-assign]

    async def one_pass() -> None:
        task = asyncio.create_task(registry.follow())
        await asyncio.sleep(0.1)
        task.cancel()

    asyncio.run(one_pass())
    assert registry.for_request("JC640104", "judgment", NOW) == ()
