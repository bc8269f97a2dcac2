"""The parties of a case, from the flow: who handles it beyond what the case's owner knows.

The case record (owned by the police system) lists the agencies that system knows: itself, the
procuratorates it asked and transferred to, the court it was indicted at. It cannot know which
prison, community-corrections office (司法局) or second-instance court takes the case later:
those agencies are named by the records of the flow, each in its own agency's system: the
court's judgment names the 交付执行 agency (``executing_agency``) and its own court; the
prison's execution record names the prison; a 刑更 案号 names the court that rules on a
commutation. The standard marks such fields ``party: true`` (an ``agency_code``, or a
``case_number`` whose issuing court is the party).

:meth:`CaseParties.complete` is called once the case a request names is resolved. When the
requester is not among the owner's handling agencies and its purpose needs a case, it reads the
records of that case that could name an agency of the requester's kind (the case filter of
each such resource, one page of up to 100 records, at most a few pages), stopping as soon as
one names the requester. For a purpose with ``stationed_supervision`` (刑事执行检察、减刑假释)
it also finds the prisons of the case, whose stationed procuratorates (派驻监所检察) are then
parties for that purpose (the engine checks the purpose). What each resource of a case names
is cached for ``ttl`` seconds, like the subjects. Records that break the standard name no one;
an agency system's failure is raised (the caller gets 502/504): no party is guessed.

:class:`CaseLocator` finds the case a 案号 names when the owner's case record does not carry
it: a second-instance 刑终 or a 刑更 案号 is known only to the court's and the prison's
records (the standard's filterable ``case_number`` fields), which give the case id.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import structlog

from adapters.base import StandardRecord
from gateway.exchange.upstream import AgencyAdapters
from gateway.policy.decision import CaseContext
from gateway.standard import (
    FieldSpec,
    FieldType,
    Standard,
    canonical_case_number,
    parse_case_number,
    record_validator,
)

__all__ = ["CaseLocator", "CaseParties", "string_values"]

log = structlog.get_logger(__name__)

CASE = "case"
CASE_ID = "case_id"
PRISON = "prison"
PROCURATORATE = "procuratorate"
COURT = "court"
_PAGE = 100
_PAGES = 5


@dataclass(frozen=True)
class _Source:
    """A resource whose records name parties of their case, and the fields that do."""

    resource: str
    owner: str
    fields: tuple[FieldSpec, ...]

    def can_name(self, kind: str) -> bool:
        """Some field of it may name an agency of ``kind``."""
        for spec in self.fields:
            if spec.type is FieldType.CASE_NUMBER and kind == COURT:
                return True
            if spec.type is FieldType.AGENCY_CODE and spec.agency_kind in (None, kind):
                return True
        return False


def string_values(value: object) -> Iterable[str]:
    """The strings of a field's value: itself, or the strings of a list."""
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list | tuple):
        return (v for v in value if isinstance(v, str))
    return ()


class _Cache:
    def __init__(self, ttl: float, size: int) -> None:
        self._ttl, self._size = ttl, size
        self._entries: dict[Any, tuple[float, Any]] = {}

    def get(self, key: Any) -> tuple[bool, Any]:
        found = self._entries.get(key)
        if found is not None and time.monotonic() - found[0] < self._ttl:
            return True, found[1]
        return False, None

    def put(self, key: Any, value: Any) -> None:
        if len(self._entries) >= self._size:
            self._entries.clear()
        self._entries[key] = (time.monotonic(), value)


class CaseParties:
    """Finds the parties of a case in the flow (module docstring); one per gateway worker."""

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
        self._cache = _Cache(ttl_seconds, cache_size)
        self._kinds = {a.code: a.kind for a in standard.agencies}
        self._stationed = {
            a.code: a.stationed_procuratorate
            for a in standard.agencies
            if a.stationed_procuratorate is not None
        }
        self._sources = tuple(
            _Source(r.name, r.owner, tuple(f for f in r.fields if f.party))
            for r in standard.resources
            if r.name != CASE and any(f.party for f in r.fields)
        )
        #: Upstream searches made (cache misses), for tests and metrics.
        self.lookups = 0

    async def complete(self, case: CaseContext, requester: str, purpose: str) -> CaseContext:
        """``case`` with the parties the flow adds for this requester and purpose."""
        kind = self._kinds.get(requester)
        try:
            spec = self._standard.purpose(purpose)
        except KeyError:
            return case
        if kind is None or not spec.needs_case or requester in case.handling_agencies:
            return case
        found: set[str] = set()
        for source in self._usable(kind):
            found |= await self._named(case.case_id, source)
            if requester in found:
                break
        stationed: set[str] = set()
        if spec.stationed_supervision and kind == PROCURATORATE:
            for source in self._usable(PRISON):
                found |= await self._named(case.case_id, source)
            stationed = {self._stationed[a] for a in found if a in self._stationed}
        if not found and not stationed:
            return case
        return replace(
            case,
            handling_agencies=case.handling_agencies | found,
            stationed_procuratorates=case.stationed_procuratorates | stationed,
        )

    def _usable(self, kind: str) -> list[_Source]:
        """Sources that may name ``kind``, reachable and searchable by case; own kind first."""
        out = [
            s
            for s in self._sources
            if s.can_name(kind)
            and self._adapters.serves(s.owner)
            and self._adapters.can_filter(s.owner, s.resource, CASE_ID)
        ]
        return sorted(out, key=lambda s: s.owner != kind)

    async def _named(self, case_id: str, source: _Source) -> frozenset[str]:
        key = (case_id, source.resource)
        hit, value = self._cache.get(key)
        if hit:
            return frozenset(value)
        self.lookups += 1
        named: set[str] = set()
        after: str | None = None
        validator = record_validator(self._standard, source.resource)
        for _ in range(_PAGES):
            page = await self._adapters.search_subjects(
                source.owner, source.resource, {CASE_ID: case_id}, limit=_PAGE, after=after
            )
            for record in page.records:
                if record.get(CASE_ID) != case_id:
                    continue
                if validator.validate(record):
                    log.warning("a flow record breaks the standard", resource=source.resource)
                    continue
                named |= self._parties_of(record, source)
            after = page.next_after
            if after is None:
                break
        result = frozenset(named)
        self._cache.put(key, result)
        return result

    def _parties_of(self, record: Mapping[str, Any], source: _Source) -> set[str]:
        out: set[str] = set()
        for spec in source.fields:
            for value in string_values(record.get(spec.name)):
                if spec.type is FieldType.CASE_NUMBER:
                    court = self._standard.court_by_code(parse_case_number(value).court_code)
                    if court is not None:
                        out.add(court.code)
                elif value in self._kinds:
                    out.add(value)
        return out


def _canonical(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        return canonical_case_number(value)
    except ValueError:
        return None


class CaseLocator:
    """Finds the case record a 案号 names through the flow's records (module docstring)."""

    def __init__(self, adapters: AgencyAdapters, standard: Standard, *, ttl_seconds: float = 30.0):
        self._adapters = adapters
        self._standard = standard
        self._cache = _Cache(ttl_seconds, 10_000)
        self._case_owner = standard.resource(CASE).owner
        self._sources = tuple(
            (r.owner, r.name, f.name)
            for r in standard.resources
            if r.name != CASE
            for f in r.fields
            if f.type is FieldType.CASE_NUMBER and f.filterable and not f.is_list
        )

    async def locate(self, case_number: str) -> StandardRecord | None:
        """The case record whose flow carries ``case_number`` (one case, or None)."""
        hit, value = self._cache.get(case_number)
        if hit:
            return value  # type: ignore[no-any-return]
        found: StandardRecord | None = None
        for owner, resource, field in self._sources:
            if not (
                self._adapters.serves(owner) and self._adapters.can_filter(owner, resource, field)
            ):
                continue
            page = await self._adapters.search_subjects(
                owner, resource, {field: case_number}, limit=_PAGE, after=None
            )
            case_ids = {
                r.get(CASE_ID) for r in page.records if _canonical(r.get(field)) == case_number
            }
            if len(case_ids) != 1:
                continue  # none, or a 案号 on records of several cases: not one case
            (case_id,) = case_ids
            if isinstance(case_id, str):
                found = await self._adapters.fetch_subject(self._case_owner, CASE, case_id)
                break
        self._cache.put(case_number, found)
        return found
