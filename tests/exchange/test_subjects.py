"""SubjectResolver (gateway/exchange/subjects.py) against an in-memory agency system.

The fake below is an :class:`~adapters.base.Adapter` at the resolver's boundary: it counts
every call, can fail or answer with records that break the standard, and pages like the real
adapters (keyset, ``next_after``). Time is injected by replacing the module's clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

import pytest
from structlog.testing import capture_logs

from adapters.base import (
    Adapter,
    AdapterError,
    AdapterHealth,
    Page,
    StandardRecord,
    UpstreamProtocolError,
    UpstreamTimeout,
)
from gateway.exchange import subjects as subjects_module
from gateway.exchange.subjects import SubjectResolver
from gateway.exchange.upstream import AgencyAdapters
from gateway.policy.decision import Outcome, RequestDecision, SubjectRecords
from gateway.standard import Standard, load_standard
from tests.policy.conftest import POLICIES

ID_NUMBER = "11010519491231002X"


def _person(person_id: str, case_id: str = "C1", **fields: Any) -> StandardRecord:
    """A person record that satisfies the standard."""
    return {
        "person_id": person_id,
        "case_id": case_id,
        "name": "张某",
        "sex": "1",
        "id_number": ID_NUMBER,
        "role": "DEFENDANT",
        "is_minor": False,
        "juvenile_record_sealed": False,
        "protected_witness": False,
        "sexual_offence_victim": False,
        **fields,
    }


def _case(case_id: str, secrecy_mark: str = "NONE") -> StandardRecord:
    return {
        "case_id": case_id,
        "police_case_number": "A6401040000002021030042",
        "case_name": "张某盗窃案",
        "case_category": "050200",
        "filing_date": "2021-03-02",
        "division": "640104",
        "stage": "TRIAL",
        "handling_agencies": ["GA640104", "FY640104"],
        "secrecy_mark": secrecy_mark,
        "has_sealed_juvenile": False,
        "closed_trial": False,
        "work_secret": False,
    }


def _judgment(defendant: str, case_id: str = "C1") -> dict[str, Any]:
    return {"judgment_id": f"J-{defendant}", "case_id": case_id, "defendant_id": defendant}


class FakeAgency(Adapter):
    """The public security system (owner of ``person`` and ``case``), in memory."""

    agency = "public_security"
    resources = frozenset({"person", "case"})

    def __init__(self, *records: StandardRecord, search_honours_case: bool = True) -> None:
        self.store: dict[tuple[str, str], StandardRecord] = {}
        for record in records:
            self.put(record)
        self.search_honours_case = search_honours_case
        self.failing: dict[str, AdapterError] = {}  # record id (or case id of a search) → error
        self.fetches: list[tuple[str, str]] = []
        self.searches: list[tuple[str, dict[str, str], str | None]] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.endless = False  # every search page says there is more

    def put(self, record: StandardRecord) -> None:
        resource = "person" if "person_id" in record else "case"
        self.store[(resource, record[f"{resource}_id"])] = record

    async def fetch(self, resource: str, record_id: str) -> StandardRecord | None:
        self.fetches.append((resource, record_id))
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0.01)  # an upstream round trip: lets concurrent calls overlap
        finally:
            self.in_flight -= 1
        if record_id in self.failing:
            raise self.failing[record_id]
        found = self.store.get((resource, record_id))
        return None if found is None else dict(found)

    async def search(
        self, resource: str, filters: Mapping[str, str], *, limit: int, after: str | None
    ) -> Page:
        self.searches.append((resource, dict(filters), after))
        case_id = filters.get("case_id", "")
        if case_id in self.failing:
            raise self.failing[case_id]
        rows = sorted(
            (record for (kind, _), record in self.store.items() if kind == resource),
            key=lambda r: str(r[f"{resource}_id"]),
        )
        if self.search_honours_case:
            rows = [r for r in rows if r.get("case_id") == case_id]
        if after is not None:
            rows = [r for r in rows if str(r[f"{resource}_id"]) > after]
        chunk = rows[:limit]
        more = self.endless or len(rows) > limit
        last = str(chunk[-1][f"{resource}_id"]) if chunk else after
        return Page([dict(r) for r in chunk], last if more else None)

    async def health(self) -> AdapterHealth:
        return AdapterHealth(ok=True)


@pytest.fixture(scope="module")
def standard() -> Standard:
    return load_standard(POLICIES / "standard")


def _resolver(agency: FakeAgency, standard: Standard, ttl_seconds: float = 30.0) -> SubjectResolver:
    adapters = AgencyAdapters({"public_security": agency}, case_owner="public_security")
    return SubjectResolver(adapters, standard, ttl_seconds=ttl_seconds)


def _decision(
    *needed: str, bound: str | None = "C1", case_persons: bool = False
) -> RequestDecision:
    """A request decision as the resolver reads it (what the policy engine hands over)."""
    return RequestDecision(
        Outcome.ALLOW,
        "allowed",
        (),
        "sha256:test",
        bound_case_id=bound,
        subject_resources=frozenset(needed),
        needs_case_persons=case_persons,
    )


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(subjects_module, "time", SimpleNamespace(monotonic=fake.monotonic))
    return fake


async def _complete(
    resolver: SubjectResolver,
    standard: Standard,
    decision: RequestDecision,
    records: list[dict[str, Any]],
    resource: str = "judgment",
) -> SubjectRecords:
    subjects = SubjectRecords()
    await resolver.complete(subjects, decision, standard.resource(resource), records)
    return subjects


# -- nothing needed, nothing fetched -----------------------------------------------------------


async def test_a_decision_needing_no_subjects_costs_no_lookup(standard: Standard) -> None:
    agency = FakeAgency(_person("P1"), _case("C1"))
    resolver = _resolver(agency, standard)
    decision = _decision()
    subjects = await resolver.prepare(
        decision, standard.resource("judgment"), {"defendant_id": "P1"}, _case("C1")
    )
    await resolver.complete(subjects, decision, standard.resource("judgment"), [_judgment("P1")])
    assert subjects.records == {}
    assert subjects.case_persons == {}
    assert (agency.fetches, agency.searches, resolver.lookups) == ([], [], 0)


# -- the cache --------------------------------------------------------------------------------


async def test_a_subject_is_served_from_the_cache_within_its_ttl(
    standard: Standard, clock: Clock
) -> None:
    agency = FakeAgency(_person("P1"))
    resolver = _resolver(agency, standard, ttl_seconds=30)
    decision = _decision("person")
    first = await _complete(resolver, standard, decision, [_judgment("P1")])
    assert first.get("person", "P1") == _person("P1")
    clock.now += 29.9
    # The owner seals the record meanwhile: within the TTL the cached record still decides.
    agency.put(_person("P1", juvenile_record_sealed=True))
    second = await _complete(resolver, standard, decision, [_judgment("P1"), _judgment("P1")])
    assert second.get("person", "P1") == _person("P1")
    assert agency.fetches == [("person", "P1")]
    assert resolver.lookups == 1
    # Past the TTL the record is fetched again, and the seal is seen.
    clock.now += 0.2
    third = await _complete(resolver, standard, decision, [_judgment("P1")])
    assert third.get("person", "P1") == _person("P1", juvenile_record_sealed=True)
    assert agency.fetches == [("person", "P1")] * 2
    assert resolver.lookups == 2


async def test_a_missing_record_is_remembered_like_a_found_one(
    standard: Standard, clock: Clock
) -> None:
    # "No such person" is an answer (the records referring to it are concealed); asking again
    # within the TTL would only cost time.
    agency = FakeAgency()
    resolver = _resolver(agency, standard)
    decision = _decision("person")
    for _ in range(2):
        subjects = await _complete(resolver, standard, decision, [_judgment("P404")])
        assert ("person", "P404") in subjects.records
        assert subjects.get("person", "P404") is None
    assert resolver.lookups == 1
    clock.now += 31
    await _complete(resolver, standard, decision, [_judgment("P404")])
    assert resolver.lookups == 2


@pytest.mark.parametrize(
    "error",
    [
        UpstreamTimeout("public_security", f"timed out reading {ID_NUMBER}"),
        UpstreamProtocolError("public_security", f"错误：{ID_NUMBER} 不存在", upstream_status=500),
    ],
)
async def test_an_upstream_error_leaves_the_subject_unresolved_and_uncached(
    standard: Standard, error: AdapterError
) -> None:
    agency = FakeAgency(_person("P1"))
    agency.failing["P1"] = error
    resolver = _resolver(agency, standard)
    decision = _decision("person")
    with capture_logs() as logs:
        failed = await _complete(resolver, standard, decision, [_judgment("P1")])
    # Unresolved: the entry is there (the policy conceals the judgment), with no record.
    assert ("person", "P1") in failed.records
    assert failed.get("person", "P1") is None
    # The operator's log says what kind of failure; the agency's text (an ID number) stays out.
    [entry] = [e for e in logs if e["event"] == "subject unresolved: upstream error"]
    assert entry["resource"] == "person"
    assert entry["upstream_status"] == error.upstream_status
    assert ID_NUMBER not in repr(logs)
    # Not cached: the next request asks again, and gets the record once the agency answers.
    again = await _complete(resolver, standard, decision, [_judgment("P1")])
    assert again.get("person", "P1") is None
    del agency.failing["P1"]
    healed = await _complete(resolver, standard, decision, [_judgment("P1")])
    assert healed.get("person", "P1") == _person("P1")
    assert resolver.lookups == 3
    assert len(agency.fetches) == 3


async def test_a_record_breaking_the_standard_is_unresolved_and_uncached(
    standard: Standard,
) -> None:
    agency = FakeAgency(
        _person("P1", juvenile_record_sealed="yes"), _case("C9", secrecy_mark="TOP")
    )
    resolver = _resolver(agency, standard)
    decision = _decision("person", "case", bound=None)
    for _ in range(2):
        subjects = await _complete(resolver, standard, decision, [_judgment("P1", "C9")])
        assert subjects.get("person", "P1") is None
        assert subjects.get("case", "C9") is None
    assert resolver.lookups == 4  # two subjects, asked twice: nothing invalid was cached
    agency.put(_person("P1"))
    agency.put(_case("C9", "MIMI"))
    fixed = await _complete(resolver, standard, decision, [_judgment("P1", "C9")])
    assert fixed.get("person", "P1") == _person("P1")
    assert fixed.get("case", "C9") == _case("C9", "MIMI")


# -- the bound case's persons ---------------------------------------------------------------


async def test_case_persons_are_paged_and_kept_to_the_case(standard: Standard) -> None:
    mine = [_person(f"P{i:04d}", "C1") for i in range(250)]
    others = [_person(f"P{i:04d}", "C2") for i in range(250, 260)]
    broken = _person("P0100", "C1", is_minor="no")  # breaks the standard: left out
    agency = FakeAgency(*mine, *others, search_honours_case=False)
    agency.put(broken)
    resolver = _resolver(agency, standard)
    decision = _decision("person", case_persons=True)
    subjects = await resolver.prepare(decision, standard.resource("judgment"), {}, _case("C1"))
    persons = subjects.case_persons["C1"]
    expected = {p["person_id"] for p in mine} - {"P0100"}
    assert {p["person_id"] for p in persons} == expected
    assert all(p["case_id"] == "C1" for p in persons)
    # Keyset pages of 100, each after the last id of the one before.
    assert [after for _, _, after in agency.searches] == [None, "P0099", "P0199"]
    assert all(filters == {"case_id": "C1"} for _, filters, _ in agency.searches)
    assert resolver.lookups == 1  # one lookup, however many pages
    # The bound case is the request's own: placed, not fetched.
    assert subjects.get("case", "C1") == _case("C1")
    assert agency.fetches == []
    # Each person of the case is cached as a subject: their judgments need no more lookups.
    await resolver.complete(
        subjects, decision, standard.resource("judgment"), [_judgment("P0007"), _judgment("P0242")]
    )
    later = await _complete(resolver, standard, decision, [_judgment("P0150")])
    assert later.get("person", "P0150") == _person("P0150", "C1")
    assert agency.fetches == []
    assert resolver.lookups == 1
    # …and the case's persons too, for the next request of the case.
    await resolver.prepare(decision, standard.resource("judgment"), {}, _case("C1"))
    assert len(agency.searches) == 3


async def test_case_persons_loading_is_bounded(standard: Standard) -> None:
    agency = FakeAgency(*(_person(f"P{i:04d}", "C1") for i in range(5)))
    agency.endless = True  # an upstream that never stops paging
    resolver = _resolver(agency, standard)
    decision = _decision("person", case_persons=True)
    subjects = await resolver.prepare(decision, standard.resource("judgment"), {}, _case("C1"))
    assert len(agency.searches) == 10
    assert {p["person_id"] for p in subjects.case_persons["C1"]} == {f"P{i:04d}" for i in range(5)}


async def test_case_persons_failure_is_unresolved_and_uncached(standard: Standard) -> None:
    agency = FakeAgency(_person("P1", "C1"))
    agency.failing["C1"] = UpstreamTimeout("public_security", "slow")
    resolver = _resolver(agency, standard)
    decision = _decision("person", case_persons=True)
    failed = await resolver.prepare(decision, standard.resource("judgment"), {}, _case("C1"))
    assert failed.case_persons["C1"] == ()  # no persons: a reach then reaches nothing
    del agency.failing["C1"]
    healed = await resolver.prepare(decision, standard.resource("judgment"), {}, _case("C1"))
    assert [p["person_id"] for p in healed.case_persons["C1"]] == ["P1"]
    assert resolver.lookups == 2


# -- what prepare resolves before the upstream call ------------------------------------------


async def test_prepare_resolves_filter_named_subjects_and_their_cases(standard: Standard) -> None:
    agency = FakeAgency(_person("P7", "C7"), _case("C7", "MIMI"), _person("P8", "C8"))
    resolver = _resolver(agency, standard)
    judgment = standard.resource("judgment")
    subjects = await resolver.prepare(
        _decision("person", "case"),
        judgment,
        {"defendant_id": "P7", "court_case_number": "(2021)宁0104刑初1号"},
        _case("C1"),
    )
    # Before any record is seen: the named defendant, and the defendant's own case.
    assert subjects.get("person", "P7") == _person("P7", "C7")
    assert subjects.get("case", "C7") == _case("C7", "MIMI")
    assert subjects.get("case", "C1") == _case("C1")  # the bound case, as given
    assert sorted(agency.fetches) == [("case", "C7"), ("person", "P7")]
    # A named person whose case is not needed: the case is not fetched.
    only_persons = _resolver(FakeAgency(_person("P8", "C8")), standard)
    found = await only_persons.prepare(_decision("person"), judgment, {"defendant_id": "P8"}, None)
    assert found.get("person", "P8") == _person("P8", "C8")
    assert ("case", "C8") not in found.records
    # A filter naming a subject the decision does not need: nothing fetched.
    unneeded = FakeAgency(_person("P7", "C7"))
    await _resolver(unneeded, standard).prepare(
        _decision("case"), judgment, {"defendant_id": "P7"}, None
    )
    assert unneeded.fetches == []


# -- what complete resolves for a page --------------------------------------------------------


async def test_complete_skips_records_of_other_cases_unless_case_persons_are_needed(
    standard: Standard,
) -> None:
    records = [_judgment("P1", "C1"), _judgment("P9", "C9")]
    agency = FakeAgency(_person("P1", "C1"), _person("P9", "C9"))
    bound = await _complete(_resolver(agency, standard), standard, _decision("person"), records)
    # The other case's record is concealed by case binding whatever its defendant is.
    assert agency.fetches == [("person", "P1")]
    assert ("person", "P9") not in bound.records

    reaching = FakeAgency(_person("P1", "C1"), _person("P9", "C9"))
    resolver = _resolver(reaching, standard)
    subjects = await _complete(resolver, standard, _decision(case_persons=True), records)
    # A reach decides on the other case's judgment by its defendant: fetched.
    assert sorted(reaching.fetches) == [("person", "P1"), ("person", "P9")]
    assert subjects.get("person", "P9") == _person("P9", "C9")

    unbound = FakeAgency(_person("P1", "C1"), _person("P9", "C9"))
    await _complete(
        _resolver(unbound, standard), standard, _decision("person", bound=None), records
    )
    assert sorted(unbound.fetches) == [("person", "P1"), ("person", "P9")]


async def test_complete_resolves_list_references_and_only_what_is_missing(
    standard: Standard,
) -> None:
    agency = FakeAgency(*(_person(p) for p in ("P1", "P2", "P3")))
    resolver = _resolver(agency, standard)
    subjects = SubjectRecords()
    subjects.add("person", "person_id", [_person("P1")])  # already resolved by prepare
    indictment = {"indictment_id": "I1", "case_id": "C1", "defendant_ids": ["P1", "P2", "P3"]}
    await resolver.complete(
        subjects, _decision("person"), standard.resource("indictment"), [indictment]
    )
    assert sorted(agency.fetches) == [("person", "P2"), ("person", "P3")]
    assert all(subjects.get("person", p) is not None for p in ("P1", "P2", "P3"))


async def test_references_are_resolved_concurrently_and_once_each(standard: Standard) -> None:
    people = [f"P{i}" for i in range(6)]
    agency = FakeAgency(*(_person(p) for p in people))
    resolver = _resolver(agency, standard)
    records = [_judgment(p) for p in people] + [_judgment(people[0]), _judgment(people[3])]
    subjects = await _complete(resolver, standard, _decision("person"), records)
    assert agency.most_in_flight == len(people)  # one gather, not one after another
    assert sorted(agency.fetches) == [("person", p) for p in people]  # duplicates asked once
    assert resolver.lookups == len(people)
    assert all(subjects.get("person", p) == _person(p) for p in people)
