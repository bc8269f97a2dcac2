"""The client snapshot: one refresh at a time once loaded, every reader served meanwhile."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from gateway.auth.clients import ClientRegistry
from gateway.auth.deps import keep_fresh
from gateway.db import create_db_engine, make_session_factory
from gateway.migrate import upgrade
from tests.conftest import make_settings


@pytest.fixture
def registry_parts(tmp_path: Path) -> tuple[ClientRegistry, list[int]]:
    settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'clients.db'}")
    upgrade(settings)
    engine = create_db_engine(settings.resolved_database_url)
    registry = ClientRegistry(make_session_factory(engine), max_age_seconds=60.0)
    calls: list[int] = []
    plain = registry.refresh
    gate = threading.Event()

    def counted() -> None:
        calls.append(1)
        gate.wait(timeout=5)  # held open while the others arrive
        plain()

    registry.refresh = counted  # type: ignore[method-assign]
    registry.gate = gate  # type: ignore[attr-defined]
    return registry, calls


def test_only_one_caller_claims_a_stale_snapshot(
    registry_parts: tuple[ClientRegistry, list[int]],
) -> None:
    registry, calls = registry_parts
    assert not registry.loaded
    registry.gate.set()  # type: ignore[attr-defined]
    registry.refresh()
    assert registry.loaded
    assert not registry.stale
    assert not registry.claim_refresh()  # fresh: nobody refreshes
    registry._loaded_at -= 61  # stale now
    assert registry.claim_refresh()
    assert not registry.claim_refresh()  # claimed: the others read the old snapshot
    registry.refresh_claimed()
    assert not registry.stale
    assert not registry.claim_refresh()
    assert len(calls) == 2


def test_a_failed_refresh_releases_the_claim(
    registry_parts: tuple[ClientRegistry, list[int]],
) -> None:
    registry, _ = registry_parts
    registry.gate.set()  # type: ignore[attr-defined]
    registry.refresh()
    registry._loaded_at -= 61

    def broken() -> None:
        raise RuntimeError("database gone")

    registry.refresh = broken  # type: ignore[method-assign]
    assert registry.claim_refresh()
    with pytest.raises(RuntimeError):
        registry.refresh_claimed()
    assert registry.stale
    assert registry.claim_refresh()  # the next caller tries again


def test_many_concurrent_requests_run_one_refresh(
    registry_parts: tuple[ClientRegistry, list[int]],
) -> None:
    """The authentication step: 50 requests at a stale moment, one refresh, none waiting."""
    registry, calls = registry_parts
    registry.gate.set()  # type: ignore[attr-defined]
    registry.refresh()
    registry.gate.clear()  # type: ignore[attr-defined]
    registry._loaded_at -= 61
    calls.clear()

    async def all_of_them() -> None:
        tasks = [asyncio.create_task(keep_fresh(registry)) for _ in range(50)]
        await asyncio.sleep(0.05)
        registry.gate.set()  # type: ignore[attr-defined]
        await asyncio.gather(*tasks)

    asyncio.run(all_of_them())
    assert len(calls) == 1
    assert not registry.stale
