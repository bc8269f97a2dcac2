"""Resolve the subjects (persons, cases) that records refer to, for the policy decision point.

Protection belongs to a subject: a sealed person, a secret case. A judgment is about its
defendant, so the policy must see the defendant's ``person`` record (and the judgment's
``case``) to decide on the judgment. The PDP does no I/O; this module fetches those records
from their owners' systems, validates them against the standard and hands them over as
:class:`~gateway.policy.decision.SubjectRecords`. They are read for the decision only and are
never released.

What is fetched, and when (so that the work done depends on the request, not on what the
upstream answers, as far as the data allows):

1. **Before the upstream call** (:meth:`SubjectResolver.prepare`): the bound case's persons
   (one search, cached with the case) when the decision needs persons; and the subjects a
   filter names (``judgment?defendant_id=P1`` resolves person P1 and P1's case), whether or
   not any record matches.
2. **For each upstream page** (:meth:`SubjectResolver.complete`): any reference still unknown,
   concurrently. With the bound case's persons loaded, records of the bound case need none.
   Records of another case that no rule reaches are concealed without a lookup.

Records are cached for ``ttl`` seconds (default 30, ``GATEWAY_SUBJECT_CACHE_SECONDS``): a
record sealed upstream is concealed everywhere within that time. A subject that cannot be
fetched (agency down, an error answer) or breaks the standard is *unresolved*: the records
referring to it are concealed (fail closed), the operator's log says why, and nothing is cached.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import structlog

from adapters.base import AdapterError, StandardRecord
from gateway.exchange.upstream import AgencyAdapters
from gateway.policy.decision import RequestDecision, SubjectRecords
from gateway.standard import ResourceType, Standard, record_validator

__all__ = ["SubjectResolver"]

log = structlog.get_logger(__name__)

PERSON = "person"
CASE = "case"
_CASE_PERSON_PAGES = 10  # at most 1,000 persons of one case are loaded
_PAGE = 100


def _ids(value: object) -> Iterable[str]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list | tuple):
        return (v for v in value if isinstance(v, str))
    return ()


class SubjectResolver:
    """Fetches and caches subject records; one instance per gateway worker."""

    def __init__(
        self,
        adapters: AgencyAdapters,
        standard: Standard,
        *,
        ttl_seconds: float = 30.0,
        cache_size: int = 20_000,
    ) -> None:
        self._adapters = adapters
        self._standard = standard
        self._ttl = ttl_seconds
        self._size = cache_size
        self._records: dict[tuple[str, str], tuple[float, StandardRecord | None]] = {}
        self._case_persons: dict[str, tuple[float, tuple[StandardRecord, ...]]] = {}
        #: Upstream lookups made (cache misses), for tests and metrics.
        self.lookups = 0

    @property
    def ttl_seconds(self) -> float:
        """How long a resolved subject is kept (also the cache time of a case's parties)."""
        return self._ttl

    @staticmethod
    def needed(decision: RequestDecision) -> frozenset[str]:
        """The subject resources this decision's records must have resolved."""
        needed = decision.subject_resources
        return needed | {PERSON} if decision.needs_case_persons else needed

    async def prepare(
        self,
        decision: RequestDecision,
        resource: ResourceType,
        filters: Mapping[str, str],
        case: Mapping[str, Any] | None,
    ) -> SubjectRecords:
        """Step 1 of the module docstring; the records found so far."""
        subjects = SubjectRecords()
        needed = self.needed(decision)
        if not needed:
            return subjects
        if case is not None:
            case_id = str(case.get("case_id"))
            subjects.records[(CASE, case_id)] = case
            if PERSON in needed:
                persons = await self._persons_of(case_id)
                subjects.case_persons[case_id] = persons
                subjects.add(PERSON, self._id_field(PERSON), persons)
        named: list[tuple[str, str]] = []
        for spec in resource.references:
            if spec.refers_to in needed and spec.name in filters:
                named.append((spec.refers_to, filters[spec.name]))
        await self._resolve(subjects, named)
        # A named person's own case decides too (its secrecy, for records of that case).
        if CASE in needed:
            cases = [
                (CASE, record["case_id"])
                for (kind, _), record in list(subjects.records.items())
                if kind == PERSON and record is not None and isinstance(record.get("case_id"), str)
            ]
            await self._resolve(subjects, cases)
        return subjects

    async def complete(
        self,
        subjects: SubjectRecords,
        decision: RequestDecision,
        resource: ResourceType,
        records: Sequence[Mapping[str, Any]],
    ) -> None:
        """Step 2: resolve what ``records`` refer to and ``subjects`` does not hold yet."""
        needed = self.needed(decision)
        if not needed:
            return
        bound = decision.bound_case_id
        wanted: list[tuple[str, str]] = []
        for record in records:
            if (
                bound is not None
                and record.get("case_id") != bound
                and not decision.needs_case_persons
            ):
                continue  # concealed by case binding whatever its subjects are
            for spec in resource.references:
                if spec.refers_to not in needed:
                    continue
                for ref in _ids(record.get(spec.name)):
                    if (spec.refers_to, ref) not in subjects.records:
                        wanted.append((spec.refers_to, ref))
        await self._resolve(subjects, wanted)

    # -- lookups -------------------------------------------------------------------------

    def _id_field(self, resource: str) -> str:
        return self._standard.resource(resource).id_field

    async def _resolve(self, subjects: SubjectRecords, wanted: Sequence[tuple[str, str]]) -> None:
        missing = list(dict.fromkeys(key for key in wanted if key not in subjects.records))
        if not missing:
            return
        found = await asyncio.gather(*(self._record(kind, ref) for kind, ref in missing))
        for key, record in zip(missing, found, strict=True):
            subjects.records[key] = record

    def _fresh(self, stamp: float) -> bool:
        return time.monotonic() - stamp < self._ttl

    def _remember(self, cache: dict[Any, Any], key: Any, value: Any) -> None:
        if len(cache) >= self._size:
            cache.clear()
        cache[key] = (time.monotonic(), value)

    async def _record(self, resource: str, record_id: str) -> StandardRecord | None:
        key = (resource, record_id)
        cached = self._records.get(key)
        if cached is not None and self._fresh(cached[0]):
            return cached[1]
        self.lookups += 1
        owner = self._standard.resource(resource).owner
        try:
            record = await self._adapters.fetch_subject(owner, resource, record_id)
        except AdapterError as exc:
            log.warning(
                "subject unresolved: upstream error",
                resource=resource,
                category=exc.category,
                upstream_status=exc.upstream_status,
            )
            return None
        if record is not None and not self._valid(resource, record):
            return None
        self._remember(self._records, key, record)
        return record

    async def _persons_of(self, case_id: str) -> tuple[StandardRecord, ...]:
        cached = self._case_persons.get(case_id)
        if cached is not None and self._fresh(cached[0]):
            return cached[1]
        self.lookups += 1
        owner = self._standard.resource(PERSON).owner
        persons: list[StandardRecord] = []
        after: str | None = None
        try:
            for _ in range(_CASE_PERSON_PAGES):
                page = await self._adapters.search_subjects(
                    owner, PERSON, {"case_id": case_id}, limit=_PAGE, after=after
                )
                persons.extend(r for r in page.records if self._valid(PERSON, r))
                after = page.next_after
                if after is None:
                    break
            else:
                # Persons past the bound are unknown: a reach to them fails closed.
                log.warning(
                    "case persons truncated", case_id=case_id, loaded=len(persons),
                    bound=_CASE_PERSON_PAGES * _PAGE,
                )  # fmt: skip
        except AdapterError as exc:
            log.warning(
                "case persons unresolved: upstream error",
                category=exc.category,
                upstream_status=exc.upstream_status,
            )
            return ()
        found = tuple(p for p in persons if p.get("case_id") == case_id)
        self._remember(self._case_persons, case_id, found)
        id_field = self._id_field(PERSON)
        for person in found:
            self._remember(self._records, (PERSON, str(person[id_field])), person)
        return found

    def _valid(self, resource: str, record: Mapping[str, Any]) -> bool:
        violations = record_validator(self._standard, resource).validate(record)
        if violations:
            log.warning(
                "subject unresolved: the record breaks the standard",
                resource=resource,
                field=violations[0].field,
            )
        return not violations
