"""The only holder of the agency adapters. Reaching one needs a :class:`Clearance`.

A clearance is issued by the exchange service, and only after the policy decision
point has decided on the request; every adapter call takes one. So a route that
wanted to skip the policy decision would have to forge a clearance, which the
choke-point test looks for (tests/exchange/test_choke_point.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from adapters.base import (
    Adapter,
    AdapterHealth,
    Delivered,
    OutboundDelivery,
    Page,
    StandardRecord,
)
from gateway.policy.decision import Outcome, RequestDecision

__all__ = ["AgencyAdapters", "Clearance", "UpstreamCall"]


class Clearance:
    """Proof that the PDP has decided on this request. Create only via :meth:`for_decision`."""

    __slots__ = ("decision",)
    _issuer_key = object()

    def __init__(self, decision: RequestDecision, key: object) -> None:
        if key is not Clearance._issuer_key:
            raise RuntimeError("a Clearance is issued by the exchange service only")
        if decision.outcome is Outcome.DENY:
            raise RuntimeError("a denied request gets no clearance")
        self.decision = decision

    @classmethod
    def for_decision(cls, decision: RequestDecision) -> Clearance:
        return cls(decision, cls._issuer_key)


@dataclass
class UpstreamCall:
    """What the audit entry needs to know of an upstream call."""

    status: int | None = None
    latency_us: int | None = None


_CASE_CACHE_SECONDS = 30.0
_CASE_CACHE_SIZE = 10_000


class AgencyAdapters:
    def __init__(self, adapters: Mapping[str, Adapter], *, case_owner: str) -> None:
        self._adapters = dict(adapters)
        self._case_owner = case_owner
        self._case_cache: dict[str, tuple[float, StandardRecord | None]] = {}

    def forget_case(self, case_number: str) -> None:
        """Drop the cached case ``case_number`` names, under any 案号 it was cached by.

        Called when a delivery of the case reached its recipient or was answered: the step may
        have moved the case (stage, handling agencies), so the next decision reads it again
        from its owner's system rather than a snapshot from before the step. Per worker.
        """
        cached = self._case_cache.pop(case_number, None)
        record = None if cached is None else cached[1]
        case_id = None if record is None else record.get("case_id")
        if case_id is not None:
            for number, (_, other) in list(self._case_cache.items()):
                if other is not None and other.get("case_id") == case_id:
                    self._case_cache.pop(number, None)

    async def resolve_case(
        self,
        case_number: str,
        call: UpstreamCall,
        check: Callable[[StandardRecord], None] | None = None,
    ) -> StandardRecord | None:
        """The case record a request names, for the policy decision only; never released.

        A 案号 is looked up as ``court_case_number``, anything else as
        ``police_case_number``, in the case owner's system. Answers are cached briefly;
        ``check`` (standard validation) runs on a fresh record before it is cached, and
        whatever it raises leaves nothing cached, so a cached record has passed it.
        """
        now = time.monotonic()
        cached = self._case_cache.get(case_number)
        if cached is not None and now - cached[0] < _CASE_CACHE_SECONDS:
            return cached[1]
        field = "police_case_number" if case_number.startswith("A") else "court_case_number"
        started = time.perf_counter()
        try:
            page = await self._adapters[self._case_owner].search(
                "case", {field: case_number}, limit=2, after=None
            )
        finally:
            call.latency_us = int((time.perf_counter() - started) * 1_000_000)
        call.status = page.upstream_status
        context = page.records[0] if len(page.records) == 1 else None
        if context is not None and check is not None:
            check(context)
        if len(self._case_cache) >= _CASE_CACHE_SIZE:
            self._case_cache.clear()
        self._case_cache[case_number] = (now, context)
        return context

    async def fetch_subject(
        self, agency: str, resource: str, record_id: str
    ) -> StandardRecord | None:
        """A subject's record (a person, a case) for the policy decision only; never released.

        Like :meth:`resolve_case`, it needs no clearance: the gateway reads it to decide on
        records that refer to it (gateway/exchange/subjects.py), and nothing of it leaves.
        """
        return await self._adapters[agency].fetch(resource, record_id)

    async def search_subjects(
        self,
        agency: str,
        resource: str,
        filters: Mapping[str, str],
        *,
        limit: int,
        after: str | None,
    ) -> Page:
        """Subject records by filter (a case's persons), for the policy decision only."""
        return await self._adapters[agency].search(resource, filters, limit=limit, after=after)

    def can_filter(self, agency: str, resource: str, name: str) -> bool:
        """The agency's search over ``resource`` takes a filter on ``name``."""
        adapter = self._adapters.get(agency)
        return adapter is not None and name in adapter.search_filters(resource)

    def serves(self, agency_kind: str) -> bool:
        return agency_kind in self._adapters

    async def fetch(
        self, clearance: Clearance, agency: str, resource: str, record_id: str, call: UpstreamCall
    ) -> StandardRecord | None:
        if not isinstance(clearance, Clearance):
            raise TypeError("a Clearance is required")
        started = time.perf_counter()
        try:
            record = await self._adapters[agency].fetch(resource, record_id)
        finally:
            call.latency_us = int((time.perf_counter() - started) * 1_000_000)
        call.status = 200 if record is not None else 404
        return record

    async def search(
        self,
        clearance: Clearance,
        agency: str,
        resource: str,
        filters: Mapping[str, str],
        *,
        limit: int,
        after: str | None,
        call: UpstreamCall,
    ) -> Page:
        if not isinstance(clearance, Clearance):
            raise TypeError("a Clearance is required")
        started = time.perf_counter()
        try:
            page = await self._adapters[agency].search(resource, filters, limit=limit, after=after)
        finally:
            call.latency_us = int((time.perf_counter() - started) * 1_000_000)
        call.status = page.upstream_status
        return page

    async def deliver(self, agency: str, delivery: OutboundDelivery) -> Delivered:
        """Push a stored delivery to the system of agency kind ``agency``.

        No clearance: the outbox pushes only deliveries stored by the delivery service after the
        policy decision point allowed them and the content was decided for the recipient
        (gateway/deliveries/service.py); nothing is read here.
        """
        return await self._adapters[agency].deliver(delivery)

    async def health(self) -> dict[str, AdapterHealth]:
        return {name: await adapter.health() for name, adapter in self._adapters.items()}

    async def aclose(self) -> None:
        for adapter in self._adapters.values():
            await adapter.aclose()
