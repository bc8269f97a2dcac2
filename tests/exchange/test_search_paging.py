"""Search pages filled past concealed records (gateway/exchange/paging.py).

First :func:`fill_page` against an in-memory upstream (with a property test over random
concealment patterns), then the gateway end to end against the sample systems, with the
policy made to conceal chosen records of case C00000020.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.base import Page, StandardRecord
from gateway.audit.service import AuditService
from gateway.exchange import paging
from gateway.exchange.paging import FilledPage, fill_page, first_ask
from gateway.policy.decision import RecordDecision
from tests.conftest import Gateway
from tests.exchange.conftest import exchange_headers

# --- fill_page against an in-memory upstream ---------------------------------------------------


class Upstream:
    """Keyset pages over ids ``R0000``… in order; ``released[i]`` says what the policy does."""

    def __init__(self, released: list[bool]) -> None:
        self.released = released
        self.ids = [f"R{i:04d}" for i in range(len(released))]
        self.asks: list[int] = []
        self.examined: list[str] = []

    async def fetch(self, after: str | None, ask: int) -> Page:
        self.asks.append(ask)
        start = 0 if after is None else self.ids.index(after) + 1
        chunk = self.ids[start : start + ask]
        more = start + ask < len(self.ids)
        return Page([{"id": i} for i in chunk], chunk[-1] if more and chunk else None)

    def examine(self, record: StandardRecord) -> RecordDecision:
        record_id = record["id"]
        self.examined.append(record_id)
        if self.released[self.ids.index(record_id)]:
            return RecordDecision(True, dict(record), frozenset(), frozenset(), ())
        return RecordDecision(False, {}, frozenset(), frozenset(), ("conceal",), conceal=True)

    async def page(
        self, limit: int, after: str | None, max_calls: int = 8
    ) -> tuple[FilledPage, list[str]]:
        seen: list[str] = []
        filled = await fill_page(
            self.fetch,
            self.examine,
            limit=limit,
            after=after,
            id_field="id",
            max_calls=max_calls,
            seen=seen,
        )
        return filled, seen


def _ids(filled: FilledPage) -> list[str]:
    return [v.record["id"] for v in filled.released]


def _pattern(text: str) -> list[bool]:
    """``"RCCR"``: released, concealed, concealed, released."""
    return [c == "R" for c in text]


async def test_a_page_is_filled_past_several_concealed_records() -> None:
    up = Upstream(_pattern("R" + "C" * 12 + "RR" + "C" * 3 + "R"))
    filled, seen = await up.page(limit=2, after=None)
    assert _ids(filled) == ["R0000", "R0013"]
    assert filled.next_after == "R0013"  # the page's last record: one the caller has seen
    assert len(filled.refused) == 12
    assert up.asks == [first_ask(2), first_ask(2) * 2]
    assert seen == up.ids[: sum(up.asks)]  # every id received, concealed or not
    assert up.examined == up.ids[:15]  # nothing past the look-ahead (R0014) is examined
    assert not filled.truncated
    following, _ = await up.page(limit=2, after=filled.next_after)
    assert _ids(following) == ["R0014", "R0018"]
    assert following.next_after is None


async def test_a_full_page_gets_no_cursor_when_only_concealed_records_follow() -> None:
    up = Upstream(_pattern("RR" + "C" * 20))
    filled, seen = await up.page(limit=2, after=None)
    assert _ids(filled) == ["R0000", "R0001"]
    assert filled.next_after is None  # no cursor to an empty page
    assert seen == up.ids


async def test_the_bound_ends_the_page_without_a_cursor() -> None:
    up = Upstream(_pattern("R" + "C" * 300 + "R"))
    filled, seen = await up.page(limit=2, after=None, max_calls=3)
    assert filled.truncated
    assert filled.calls == 3 == len(up.asks)
    assert _ids(filled) == ["R0000"]
    assert filled.next_after is None
    assert seen == up.ids[: sum(up.asks)]
    nothing, _ = await up.page(limit=2, after="R0000", max_calls=1)
    assert nothing.truncated
    assert (nothing.released, nothing.next_after) == ([], None)


async def test_the_asks_grow_and_stay_bounded() -> None:
    up = Upstream(_pattern("C" * 2000))
    await up.page(limit=1, after=None, max_calls=10)
    assert up.asks[0] == 1 + 1 + paging.FIRST_CALL_SPARE
    assert up.asks == sorted(up.asks)
    assert max(up.asks) == paging.MAX_ASK


def _walk(released: list[bool], limit: int, max_calls: int) -> tuple[list[list[str]], bool]:
    async def run() -> tuple[list[list[str]], bool]:
        up = Upstream(released)
        pages: list[list[str]] = []
        after = None
        truncated = False
        for _ in range(len(released) + 2):
            filled, _seen = await up.page(limit, after, max_calls)
            pages.append(_ids(filled))
            truncated |= filled.truncated
            if filled.next_after is None:
                return pages, truncated
            # a cursor comes with a full page, and points at that page's last record
            assert len(filled.released) == limit
            assert filled.next_after == _ids(filled)[-1]
            after = filled.next_after
        raise AssertionError("the pages never end")

    return asyncio.run(run())


@settings(max_examples=300, deadline=None)
@given(
    released=st.lists(st.booleans(), max_size=120),
    limit=st.integers(min_value=1, max_value=5),
    max_calls=st.integers(min_value=1, max_value=8),
)
def test_pages_never_betray_concealment(released: list[bool], limit: int, max_calls: int) -> None:
    pages, truncated = _walk(released, limit, max_calls)
    listed = [record_id for page in pages for record_id in page]
    expected = [f"R{i:04d}" for i, r in enumerate(released) if r]
    # no page after the first is empty or short, except the last, which may be short
    assert all(len(page) == limit for page in pages[:-1])
    assert len(pages) == 1 or pages[-1]
    # in order, nothing twice, nothing concealed; complete unless a run outgrew the bound
    assert listed == expected[: len(listed)]
    if not truncated:
        assert listed == expected


# --- end to end ---------------------------------------------------------------------------------

COURT_CASE = "(2024)宁0104刑初465号"  # C00000020: at trial, court FY640104 handles it
PERSONS = ["P0000002001", "P0000002002", "P0000002003", "P0000002004"]
CONCEAL_RULE = "test.conceal"


def _conceal(monkeypatch: pytest.MonkeyPatch, gw: Gateway, hidden: set[str]) -> list[int]:
    """Make the policy conceal ``hidden`` persons; count the upstream search calls."""
    runtime = gw.client.app.state.runtime  # type: ignore[attr-defined]
    pdp = runtime.policy.current
    original = pdp.filter_record

    def filter_record(
        decision: Any, request: Any, record: Mapping[str, Any], subjects: Any = None
    ) -> RecordDecision:
        if record.get("person_id") in hidden:
            return RecordDecision(
                False, {}, frozenset(), frozenset(), (CONCEAL_RULE,), conceal=True
            )
        verdict: RecordDecision = original(decision, request, record, subjects)
        return verdict

    monkeypatch.setattr(pdp, "filter_record", filter_record)
    adapters = runtime.exchange.adapters
    search = adapters.search
    asks: list[int] = []

    async def counted(*args: Any, **kwargs: Any) -> Page:
        asks.append(kwargs["limit"])
        page: Page = await search(*args, **kwargs)
        return page

    monkeypatch.setattr(adapters, "search", counted)
    return asks


def _pages(gw: Gateway, limit: int = 1) -> list[Any]:
    headers = exchange_headers(gw, "court", "TRIAL", COURT_CASE)
    url = f"/v1/resources/person?case_id=C00000020&limit={limit}"
    responses = []
    for _ in range(10):
        response = gw.client.get(url, headers=headers)
        assert response.status_code == 200, response.text
        responses.append(response)
        cursor = response.json()["next_cursor"]
        if cursor is None:
            return responses
        url = f"/v1/resources/person?case_id=C00000020&limit={limit}&cursor={cursor}"
    raise AssertionError("the pages never end")


def _entry(gw: Gateway, response: Any) -> dict[str, Any]:
    index = int(response.headers["X-Audit-Index"])
    service = AuditService(gw.client.app.state.runtime.engine)  # type: ignore[attr-defined]
    return service.entry(index).document


def _records(response: Any) -> list[str]:
    return [r["person_id"] for r in response.json()["records"]]


def test_concealed_records_cost_no_extra_call_within_the_spare(
    exchange_gateway: Callable[..., Gateway], monkeypatch: pytest.MonkeyPatch
) -> None:
    gw = exchange_gateway()
    asks = _conceal(monkeypatch, gw, {"P0000002002", "P0000002003"})
    first, last = _pages(gw)
    assert (_records(first), _records(last)) == (["P0000002001"], ["P0000002004"])
    assert asks == [first_ask(1), first_ask(1)]  # one upstream call per page, as unconcealed


def test_page_fill_reads_on_across_concealed_records_and_audits_every_id(
    exchange_gateway: Callable[..., Gateway], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(paging, "FIRST_CALL_SPARE", 0)  # two records a call: several calls
    gw = exchange_gateway()
    asks = _conceal(monkeypatch, gw, {"P0000002002", "P0000002003"})
    first, last = _pages(gw)
    assert (_records(first), _records(last)) == (["P0000002001"], ["P0000002004"])
    assert asks == [2, 4, 2, 4]
    entry = _entry(gw, first)
    assert entry["record_ids"] == PERSONS  # the look-ahead P0000002004 included
    assert entry["decision"] == "allow"
    assert CONCEAL_RULE in entry["rule_ids"]
    assert entry["upstream"]["status"] == 200
    assert entry["upstream"]["latency_us"] > 0
    assert _entry(gw, last)["record_ids"] == PERSONS[1:]


def test_the_bound_gives_a_last_page_and_tells_the_audit_log(
    exchange_gateway: Callable[..., Gateway], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(paging, "FIRST_CALL_SPARE", 0)
    gw = exchange_gateway(search_upstream_calls=1)
    asks = _conceal(monkeypatch, gw, {"P0000002001", "P0000002002"})
    (only,) = _pages(gw)
    body = only.json()
    assert body["records"] == []
    assert body["next_cursor"] is None  # never an empty page with a cursor
    assert asks == [2]
    entry = _entry(gw, only)
    assert entry["record_ids"] == PERSONS[:2]
    assert entry["decision"] == "allow"
    assert "bound of 1 upstream calls" in entry["detail"]


def test_the_bound_keeps_what_was_released(
    exchange_gateway: Callable[..., Gateway], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(paging, "FIRST_CALL_SPARE", 0)
    gw = exchange_gateway(search_upstream_calls=1)
    _conceal(monkeypatch, gw, {"P0000002002"})
    (only,) = _pages(gw)  # the one call: 2001 released, 2002 concealed, more follow
    assert _records(only) == ["P0000002001"]
    assert only.json()["next_cursor"] is None
    assert "bound" in _entry(gw, only)["detail"]


def test_without_concealment_pages_are_unchanged(
    exchange_gateway: Callable[..., Gateway], monkeypatch: pytest.MonkeyPatch
) -> None:
    gw = exchange_gateway()
    asks = _conceal(monkeypatch, gw, set())
    pages = _pages(gw, limit=2)
    assert [_records(p) for p in pages] == [PERSONS[:2], PERSONS[2:]]
    assert len(asks) == 2
    assert all(_entry(gw, p)["detail"] is None for p in pages)
