"""One search page, filled past the records the policy conceals, without betraying them.

The policy may withhold some of the records an upstream page holds. Answering with what is left
would give short or empty pages followed by a ``next_cursor``, which a caller reads as "something
was taken out here". So a page is built by these rules:

* **Fill.** Upstream pages are read on (each from the last upstream id) until the page holds
  ``limit`` released records or the upstream has no more.
* **Look-ahead.** A ``next_cursor`` is given only once one more released record has been seen
  after the page, and it points at the page's last released record, an id the caller has just
  read. The next page therefore holds at least that record: no page after a cursor is ever
  empty, and a short page is always the last one, exactly as when nothing was concealed.
* **Bound.** At most ``max_calls`` upstream calls per request. If the bound is reached before
  the look-ahead is found, the page ends there *without* a cursor, as if the results ended.
  Any other answer would reveal a run of concealed records (a cursor after a short or empty page,
  or an error that only such a run causes), so completeness gives way: the caller cannot page past
  a run of records it may not see that is longer than the bound reaches, and must narrow the
  filters. The audit entry says where the page stopped. A cursor, once given, leads to a
  non-empty page within the bound (data and policy unchanged, same ``limit``): the next request
  asks the same sizes in turn and has fewer records to read to the look-ahead than the request
  that found it.
* **Timing.** The first call asks for a few more records than the page needs, so that a few
  concealed records cost no extra round trip. A longer run does, which a caller timing its
  requests may notice; making every request pay ``max_calls`` calls would close that at a price
  no agency system should pay.

Every upstream record id received goes into ``seen`` (the request's audit entry) as it arrives, so
the entry names them even when a later call fails. ``before(records)`` runs on each upstream page
before its records are examined (the exchange resolves the subjects they refer to there).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from adapters.base import AdapterError, Page, StandardRecord, UnsupportedOperation
from gateway.errors import UnprocessableContent
from gateway.exchange.upstream import AgencyAdapters, Clearance, UpstreamCall
from gateway.policy.decision import RecordDecision
from gateway.standard import ResourceType

__all__ = [
    "FIRST_CALL_SPARE",
    "MAX_ASK",
    "FilledPage",
    "UpstreamPages",
    "fill_page",
    "first_ask",
]

FIRST_CALL_SPARE = 4
MAX_ASK = 200

Fetch = Callable[[str | None, int], Awaitable[Page]]
Examine = Callable[[StandardRecord], RecordDecision]
Before = Callable[[Sequence[StandardRecord]], Awaitable[None]]


@dataclass
class FilledPage:
    released: list[RecordDecision] = field(default_factory=list)
    refused: list[RecordDecision] = field(default_factory=list)
    # The last released record's id when a released record follows it, else None.
    next_after: str | None = None
    calls: int = 0
    # Stopped at the bound while the upstream still had records.
    truncated: bool = False


class UpstreamPages:
    """Reads one search's upstream pages; keeps what its audit entry says of them."""

    def __init__(
        self,
        adapters: AgencyAdapters,
        clearance: Clearance,
        resource: ResourceType,
        filters: Mapping[str, str],
    ) -> None:
        self._adapters, self._clearance = adapters, clearance
        self._resource, self._filters = resource, filters
        self.status: int | None = None
        self.latency_us: int | None = None

    async def __call__(self, after: str | None, ask: int) -> Page:
        call = UpstreamCall()
        try:
            page = await self._adapters.search(
                self._clearance,
                self._resource.owner,
                self._resource.name,
                self._filters,
                limit=ask,
                after=after,
                call=call,
            )
        except UnsupportedOperation as exc:
            raise UnprocessableContent(
                str(exc), [{"field": "filters", "reason": str(exc)}]
            ) from exc
        except AdapterError as exc:
            self.status = exc.upstream_status
            raise
        finally:
            # A filled page may take several calls: the entry shows their total time.
            if call.latency_us is not None:
                self.latency_us = (self.latency_us or 0) + call.latency_us
        self.status = call.status
        return page


def first_ask(limit: int) -> int:
    """How many records the first upstream call asks for: the page, the look-ahead and a spare."""
    return min(limit + 1 + FIRST_CALL_SPARE, MAX_ASK)


async def fill_page(
    fetch: Fetch,
    examine: Examine,
    *,
    limit: int,
    after: str | None,
    id_field: str,
    max_calls: int,
    seen: list[str],
    before: Before | None = None,
) -> FilledPage:
    """Build one page (module docstring); ``fetch(after, ask)`` reads one upstream page."""
    result = FilledPage()
    ask = first_ask(limit)
    last_released: str | None = None
    while True:
        page = await fetch(after, ask)
        result.calls += 1
        ids = [str(record.get(id_field)) for record in page.records]
        seen.extend(ids)
        if before is not None:
            await before(page.records)
        for record, record_id in zip(page.records, ids, strict=True):
            verdict = examine(record)
            if not verdict.released:
                result.refused.append(verdict)
            elif len(result.released) < limit:
                result.released.append(verdict)
                last_released = record_id
            else:
                result.next_after = last_released
                return result
        if page.next_after is None:
            return result
        if result.calls >= max_calls:
            result.truncated = True
            return result
        after = page.next_after
        # A run of concealed records is under way: read on in larger steps.
        ask = min(ask * 2, MAX_ASK)
