"""Aggregated audit entries: many requests from one source in one interval, one entry.

Requests nobody can be held to account for (no valid token: :class:`AnonymousRequests`) and
failed token requests (:class:`FailedTokenRequests`) must not grow the append-only log
without bound: a flood of them would fill the disk, and the gateway fails closed, so a full
disk is a full outage. They are counted in memory by key (source address and route; claimed
client id and source address) for ``interval_s``, then written as **one entry per key and
interval** with the count and the counts by outcome. Within one interval at most
``max_keys`` keys are kept per kind; further keys are counted under one overflow key (source
``(other sources)``). So each worker writes at most ``max_keys + 1`` entries per kind and
interval, whatever arrives (docs/operations.md, "Disk growth").

The counts of an interval are written when it ends (and at shutdown). They are not durable
before that: a crash loses at most one interval's counts of requests that were all refused,
none of which released anything.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog

from gateway.audit.entry import AuditKind, Decision, EntryDraft
from gateway.audit.writer import AuditUnavailable, AuditWriter

__all__ = [
    "OTHER_SOURCES",
    "Aggregator",
    "AnonymousRequests",
    "FailedSignIns",
    "FailedTokenRequests",
]

log = structlog.get_logger(__name__)

OTHER_SOURCES = "(other sources)"
_SAMPLES = 5  # claimed client ids kept as examples per unregistered key


@dataclass
class _Bucket:
    statuses: Counter[str] = field(default_factory=Counter)
    samples: set[str] = field(default_factory=set)
    distinct: int = 0

    @property
    def count(self) -> int:
        return sum(self.statuses.values())


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")


def printable(text: str, limit: int = 64) -> str:
    """Caller-chosen text as the log may hold it: short, no control characters."""
    return "".join(c if c.isprintable() else "\N{REPLACEMENT CHARACTER}" for c in text[:limit])


class Aggregator:
    kind: AuditKind = AuditKind.ANONYMOUS

    def __init__(
        self,
        writer: AuditWriter,
        *,
        interval_s: float,
        max_keys: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.writer = writer
        self.interval_s = interval_s
        self.max_keys = max_keys
        self.clock = clock
        self._buckets: dict[int, dict[tuple[str, str], _Bucket]] = {}
        self._lock = threading.Lock()
        self.written = 0

    def _add(self, key: tuple[str, str], outcome: str, sample: str | None = None) -> None:
        start = int(self.clock() // self.interval_s)
        with self._lock:
            interval = self._buckets.setdefault(start, {})
            if key not in interval and len(interval) >= self.max_keys:
                key = self._overflow(key)
            bucket = interval.setdefault(key, _Bucket())
            bucket.statuses[outcome] += 1
            if sample is not None and sample not in bucket.samples:
                bucket.distinct += 1
                if len(bucket.samples) < _SAMPLES:
                    bucket.samples.add(sample)

    def _overflow(self, key: tuple[str, str]) -> tuple[str, str]:
        return (OTHER_SOURCES, key[1])

    def _draft(self, start: float, end: float, key: tuple[str, str], bucket: _Bucket) -> EntryDraft:
        raise NotImplementedError

    def pending(self) -> int:
        with self._lock:
            return sum(bucket.count for keys in self._buckets.values() for bucket in keys.values())

    def flush(self, *, everything: bool = False) -> list[concurrent.futures.Future[int]]:
        """Hand the entries of every interval that has ended (every interval: ``everything``)
        to the writer; their futures (each gives the entry's index once it is durable)."""
        now = self.clock()
        current = int(now // self.interval_s)
        with self._lock:
            ready = [s for s in self._buckets if everything or s < current]
            taken = [(s, self._buckets.pop(s)) for s in sorted(ready)]
        futures = []
        for start, keys in taken:
            begin = start * self.interval_s
            end = min(begin + self.interval_s, now)
            for key, bucket in sorted(keys.items()):
                draft = self._draft(begin, end, key, bucket)
                try:
                    future = self.writer.submit(draft)
                except AuditUnavailable:
                    log.error("aggregated entry lost", kind=str(self.kind), count=bucket.count)
                    continue
                future.add_done_callback(_log_failure)
                futures.append(future)
        self.written += len(futures)
        return futures

    async def run(self) -> None:
        while True:
            await asyncio.sleep(min(self.interval_s, 1.0))
            self.flush()

    def _common(self, end: float) -> dict[str, Any]:
        return {"kind": self.kind, "time": datetime.fromtimestamp(end, UTC)}


def _log_failure(future: Any) -> None:
    if future.cancelled() or future.exception() is None:
        return
    log.error("aggregated audit entry could not be written", error=str(future.exception()))


class AnonymousRequests(Aggregator):
    """Refused requests without a valid token, by source address and route."""

    kind = AuditKind.ANONYMOUS

    def count(self, source: str, route: str, status: int) -> None:
        self._add((printable(source), printable(route, 128)), str(status))

    def _draft(self, start: float, end: float, key: tuple[str, str], bucket: _Bucket) -> EntryDraft:
        source, route = key
        return EntryDraft(
            **self._common(end),
            decision=Decision.INVALID,
            status=int(bucket.statuses.most_common(1)[0][0]),
            detail="unauthenticated requests, aggregated",
            aggregate={
                "source": source,
                "route": route,
                "from": _iso(start),
                "until": _iso(end),
                "count": bucket.count,
                "statuses": dict(sorted(bucket.statuses.items())),
            },
        )


class FailedTokenRequests(Aggregator):
    """Failed token requests, by claimed client id (registered ones by name, the others under
    ``(unregistered)`` with a few examples) and source address."""

    kind = AuditKind.TOKEN
    route = "POST /oauth/token"

    def __init__(self, writer: AuditWriter, *, agency_of: Callable[[str], str | None], **kw: Any):
        super().__init__(writer, **kw)
        self.agency_of = agency_of

    def count(self, client_id: str | None, registered: bool, source: str, outcome: str) -> None:
        claimed = printable(client_id) if client_id else None
        key = claimed if registered and claimed else "(unregistered)" if claimed else "(none)"
        self._add((key, printable(source)), outcome, None if registered else claimed)

    def _overflow(self, key: tuple[str, str]) -> tuple[str, str]:
        return (key[0], OTHER_SOURCES)

    def _draft(self, start: float, end: float, key: tuple[str, str], bucket: _Bucket) -> EntryDraft:
        claimed, source = key
        registered = not claimed.startswith("(")
        aggregate: dict[str, Any] = {
            "source": source,
            "route": self.route,
            "from": _iso(start),
            "until": _iso(end),
            "count": bucket.count,
            "outcomes": dict(sorted(bucket.statuses.items())),
        }
        if bucket.samples:
            aggregate["claimed_client_ids"] = sorted(bucket.samples)
            aggregate["distinct_claimed_client_ids"] = bucket.distinct
        outcome = bucket.statuses.most_common(1)[0][0]
        status = {
            "rate_limited": 429,
            "busy": 429,
            "invalid_client": 401,
            "invalid_credentials": 401,
            "totp_not_enrolled": 403,  # a console administrator without TOTP (docs/console.md)
        }.get(outcome, 400)
        return EntryDraft(
            **self._common(end),
            client_id=claimed if registered else None,
            requester_agency=self.agency_of(claimed) if registered else None,
            decision=Decision.DENY,
            status=status,
            detail="failed token requests, aggregated",
            aggregate=aggregate,
        )


class FailedSignIns(FailedTokenRequests):
    """Failed sign-ins of people at the authorization endpoint (the web console), counted as
    failed token requests are: by claimed user name and source."""

    route = "POST /oauth/authorize"
