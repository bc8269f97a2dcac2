"""Drafts gathered on the event loop: one hand-off per batch, group commit, fail closed.

The property test drives :class:`LoopGroup` with random adds, cancellations, time and
settlements against a model of what must hold (each live draft handed off once, in order,
in batches of at most ``max_batch``, one batch in flight, none lost); the writer tests run
it with the real writer and database.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from gateway.audit.entry import EntryDraft
from gateway.audit.gathering import LoopGroup
from gateway.audit.leaf import LeafEncodingError
from gateway.audit.writer import AuditUnavailable, AuditWriter
from tests.audit.conftest import AuditLog, exchange_draft, migrate

# --- the group alone, against a model --------------------------------------------------------

Step = tuple[str, int]
steps = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.integers(1, 5)),
        st.tuples(st.just("cancel"), st.integers(0, 40)),
        st.tuples(st.just("wait"), st.integers(0, 3)),
        st.tuples(st.just("settle"), st.just(0)),
    ),
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(steps=steps, max_batch=st.integers(1, 6))
def test_the_group_hands_off_every_live_draft_once_in_order(
    steps: list[Step], max_batch: int
) -> None:
    asyncio.run(_run_group(steps, max_batch))


async def _run_group(steps: list[Step], max_batch: int) -> None:
    loop = asyncio.get_running_loop()
    wait_s = 0.002
    batches: list[tuple[list[int], list[asyncio.Future[int]]]] = []
    in_flight: list[tuple[list[int], list[asyncio.Future[int]]]] = []
    idle_calls = 0

    def hand_off(
        group: LoopGroup[int], drafts: list[int], futures: list[asyncio.Future[int]]
    ) -> None:
        assert not in_flight, "a second batch while one is in flight"
        assert 1 <= len(drafts) <= max_batch
        assert all(not f.done() for f in futures), "a draft whose caller gave up was handed off"
        batches.append((drafts, futures))
        in_flight.append((drafts, futures))

    def on_idle(group: LoopGroup[int]) -> None:
        nonlocal idle_calls
        idle_calls += 1

    group: LoopGroup[int] = LoopGroup(
        loop, max_batch=max_batch, max_wait_s=wait_s, hand_off=hand_off, on_idle=on_idle
    )
    added: list[tuple[int, asyncio.Future[int]]] = []
    cancelled_before: set[int] = set()

    def handed() -> set[int]:
        return {d for drafts, _ in batches for d in drafts}

    def settle_one() -> None:
        drafts, futures = in_flight.pop(0)
        group.settle(futures, [d * 10 for d in drafts])

    for action, value in steps:
        if action == "add":
            for _ in range(value):
                draft = len(added)
                added.append((draft, group.add(draft)))
        elif action == "cancel" and added:
            draft, future = added[value % len(added)]
            if draft not in handed():
                cancelled_before.add(draft)
            future.cancel()
        elif action == "wait":
            await asyncio.sleep(wait_s * value)
        elif action == "settle" and in_flight:
            settle_one()
    # Let everything go: settle each batch as it comes until nothing is waiting.
    for _ in range(len(added) + 2):
        await asyncio.sleep(wait_s * 2)
        while in_flight:
            settle_one()

    order = [d for drafts, _ in batches for d in drafts]
    assert order == sorted(order), "handed off out of order"
    assert len(order) == len(set(order)), "a draft handed off twice"
    live = {d for d, _ in added} - cancelled_before
    assert set(order) == live, "a live draft was never handed off, or a cancelled one was"
    for draft, future in added:
        if draft in cancelled_before or future.cancelled():
            continue
        assert future.result() == draft * 10
    if added:
        assert idle_calls >= 1  # the writer can forget an idle group


# --- with the writer ---------------------------------------------------------------------


class _GatedWriter(AuditWriter):
    """A writer whose commits wait for ``gate`` and record their sizes."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.sizes: list[int] = []

    def _commit(self, drafts: Sequence[EntryDraft]) -> list[int | LeafEncodingError]:
        self.sizes.append(len(drafts))
        self.entered.set()
        assert self.gate.wait(timeout=30)
        return super()._commit(drafts)


@pytest.fixture
def gated(tmp_path: Path, database_url: str) -> _GatedWriter:
    migrate(tmp_path, database_url)
    return _GatedWriter(database_url, max_batch=8, max_wait_s=0.01)


class _Expired(Exception):
    pass


def _timed_group(handed: list[list[int]], *, timeout_s: float, max_wait_s: float) -> LoopGroup[int]:
    def hand_off(
        group: LoopGroup[int], drafts: list[int], futures: list[asyncio.Future[int]]
    ) -> None:
        handed.append(drafts)  # never settled: the writer is stuck

    return LoopGroup(
        asyncio.get_running_loop(),
        max_batch=64,
        max_wait_s=max_wait_s,
        hand_off=hand_off,
        on_idle=lambda group: None,
        timeout_s=timeout_s,
        expired=_Expired,
    )


async def test_each_caller_waits_at_most_the_timeout_from_its_own_add() -> None:
    handed: list[list[int]] = []
    group = _timed_group(handed, timeout_s=0.2, max_wait_s=10.0)  # no hand-off in time
    loop = asyncio.get_running_loop()
    started = loop.time()
    first = group.add(0)
    await asyncio.sleep(0.1)
    second = group.add(1)
    with pytest.raises(_Expired):
        await first
    assert 0.2 <= loop.time() - started < 0.29
    assert not second.done()  # its own deadline is later, not the first one's
    with pytest.raises(_Expired):
        await second
    assert loop.time() - started >= 0.3
    group.flush()
    assert handed == []  # both gave up before the hand-off: neither draft goes


async def test_a_timed_out_draft_already_handed_off_stays_handed_off() -> None:
    handed: list[list[int]] = []
    group = _timed_group(handed, timeout_s=0.1, max_wait_s=0.0)
    future = group.add(7)
    await asyncio.sleep(0.01)
    assert handed == [[7]]  # with the writer (which then writes it)
    with pytest.raises(_Expired):
        await future
    group.settle([future], [3])  # the late outcome changes nothing for the caller
    assert isinstance(future.exception(), _Expired)


async def test_a_group_that_went_idle_leaves_no_timer_behind() -> None:
    settled: list[int] = []

    def hand_off(
        group: LoopGroup[int], drafts: list[int], futures: list[asyncio.Future[int]]
    ) -> None:
        asyncio.get_running_loop().call_soon(group.settle, futures, [d * 2 for d in drafts])

    group: LoopGroup[int] = LoopGroup(
        asyncio.get_running_loop(),
        max_batch=4,
        max_wait_s=0.0,
        hand_off=hand_off,
        on_idle=lambda group: settled.append(1),
        timeout_s=0.05,
        expired=_Expired,
    )
    assert await group.add(5) == 10
    assert settled  # idle
    assert group._deadline_timer is None
    assert not group._deadlines
    await asyncio.sleep(0.08)  # past the deadline: nothing fires, nothing fails


async def test_a_burst_reaches_the_writer_thread_a_batch_at_a_time(audit_log: AuditLog) -> None:
    writer = audit_log.writer
    before = writer.hand_offs
    indices = await asyncio.gather(*(writer.append(exchange_draft(i)) for i in range(300)))
    assert sorted(indices) == list(range(300))
    # One wake-up of the writer thread per batch of up to max_batch (256), not one per entry.
    assert writer.hand_offs - before <= 3
    stored = audit_log.rows("SELECT idx, request_id FROM audit_entries ORDER BY idx")
    assert [(r.idx, r.request_id) for r in stored] == [
        (index, f"req-{n:05d}") for n, index in sorted(enumerate(indices), key=lambda p: p[1])
    ]
    assert audit_log.verify().ok


async def test_drafts_that_wait_for_a_commit_go_together_within_max_batch(
    gated: _GatedWriter,
) -> None:
    gated.start()
    try:
        gated.gate.clear()
        first = asyncio.ensure_future(gated.append(exchange_draft(0)))
        assert await asyncio.to_thread(gated.entered.wait, 30)
        # While the first batch is being committed, twenty more arrive.
        rest = [asyncio.ensure_future(gated.append(exchange_draft(i))) for i in range(1, 21)]
        await asyncio.sleep(0.05)
        assert gated.sizes == [1]
        gated.gate.set()
        indices = await asyncio.gather(first, *rest)
        assert sorted(indices) == list(range(21))
        assert gated.sizes[0] == 1
        assert sum(gated.sizes) == 21
        assert max(gated.sizes) <= 8
        assert len(gated.sizes) == 1 + 3  # 20 waiting, in batches of 8, 8, 4
    finally:
        gated.gate.set()
        gated.stop()


async def test_a_caller_that_gives_up_before_the_hand_off_is_not_written(
    tmp_path: Path, database_url: str
) -> None:
    migrate(tmp_path, database_url)
    writer = AuditWriter(database_url, max_wait_s=0.2)
    writer.start()
    try:
        gone = asyncio.ensure_future(writer.append(exchange_draft(0)))
        kept = asyncio.ensure_future(writer.append(exchange_draft(1)))
        await asyncio.sleep(0)
        gone.cancel()
        assert await kept == 0  # the cancelled draft took no index
        with pytest.raises(asyncio.CancelledError):
            await gone
    finally:
        writer.stop()


async def test_a_caller_that_times_out_after_the_hand_off_leaves_its_entry(
    gated: _GatedWriter,
) -> None:
    gated.append_timeout_s = 0.5
    gated.start()
    try:
        gated.gate.clear()
        waiting = asyncio.ensure_future(gated.append(exchange_draft(0)))
        assert await asyncio.to_thread(gated.entered.wait, 30)  # handed off, being committed
        with pytest.raises(AuditUnavailable, match="in time"):
            await waiting
        gated.gate.set()
        # The entry was in the writer's hands: it is written, and the next one follows it.
        assert await gated.append(exchange_draft(1)) == 1
        with gated.engine.connect() as conn:
            ids = conn.execute(text("SELECT request_id FROM audit_entries ORDER BY idx"))
            assert [row.request_id for row in ids] == ["req-00000", "req-00001"]
    finally:
        gated.gate.set()
        gated.stop()


async def test_stop_on_the_loop_writes_what_the_loop_gathered(
    tmp_path: Path, database_url: str
) -> None:
    migrate(tmp_path, database_url)
    writer = AuditWriter(database_url, max_wait_s=5.0)  # nothing would go for five seconds
    writer.start()
    appends = [asyncio.ensure_future(writer.append(exchange_draft(i))) for i in range(5)]
    await asyncio.sleep(0.01)
    writer.stop()
    assert sorted(await asyncio.gather(*appends)) == list(range(5))
    with pytest.raises(AuditUnavailable):
        await writer.append(exchange_draft(5))


async def test_a_failed_commit_fails_every_draft_of_the_loop_batch(audit_log: AuditLog) -> None:
    writer = audit_log.writer
    audit_log.execute("ALTER TABLE audit_entries RENAME TO audit_entries_away")
    results = await asyncio.gather(
        *(writer.append(exchange_draft(i)) for i in range(10)), return_exceptions=True
    )
    assert all(isinstance(r, AuditUnavailable) for r in results), results
    # Each caller has its own exception object, not one shared between tasks.
    assert len({id(r) for r in results}) == 10
    audit_log.execute("ALTER TABLE audit_entries_away RENAME TO audit_entries")
    assert await writer.append(exchange_draft(10)) == 0
