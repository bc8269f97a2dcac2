"""The decision memo: a remembered decision is the decision a fresh engine makes.

``PolicyEngine.decide`` remembers decisions by every input a rule can read
(``PolicyEngine._decision_key``). These tests check that a hit is never stale: against a
fresh engine over random requests (hypothesis), and for each input that must change the key.
"""

from __future__ import annotations

import dataclasses
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.policy import PolicyEngine
from gateway.policy.decision import (
    AccessRequest,
    CaseContext,
    Grant,
    RequestDecision,
    SubjectRecords,
)
from gateway.policy.memo import (
    CASE_KEY_FIELDS,
    GRANT_KEY_FIELDS,
    REQUEST_KEY_FIELDS,
    REQUEST_READ_FIELDS,
)
from gateway.policy.records import Plan
from gateway.standard import Standard
from sandbox.generator import Dataset
from tests.policy.conftest import PolicyWriter, engine_for, perm

DATASET = Dataset(2021, 120)
AGENCIES = ["GA640104", "GA640105", "JC640104", "FY640104", "FY640105", "JY640001", "SF640104"]
KINDS = {"GA": "public_security", "JC": "procuratorate", "FY": "court", "JY": "prison",
         "SF": "justice"}  # fmt: skip


def _case(index: int, *, copy: bool = False) -> CaseContext:
    record: dict[str, Any] = dict(DATASET.case(index).case)
    if copy:
        record = dict(record)
    return CaseContext(
        case_id=record["case_id"],
        police_case_number=record.get("police_case_number"),
        court_case_number=record.get("court_case_number"),
        handling_agencies=frozenset(record["handling_agencies"]),
        stage=record.get("stage"),
        secrecy_mark=record.get("secrecy_mark"),
        record=record,
    )


def _shape(decision: RequestDecision) -> tuple[object, ...]:
    plan = decision.plan
    plan_shape: tuple[object, ...] | None = None
    if isinstance(plan, Plan):
        plan_shape = (
            plan.released, plan.permitted, plan.withheld, plan.base_fields,
            tuple(sorted(plan.masks)), plan.bound_case_id, plan.filter_fields, plan.clear,
            plan.reach_fields, plan.rule_ids, tuple(s.resource for s in plan.subjects),
            plan.withhold_all.id if plan.withhold_all else None,
            None if plan.case_record is None else plan.case_record.get("case_id"),
        )  # fmt: skip
    return (
        decision.outcome, decision.reason, decision.rule_ids, decision.permitted_fields,
        decision.withheld_fields, decision.masked_fields, decision.clear_fields,
        decision.bound_case_id, decision.subject_resources, decision.needs_case_persons,
        decision.records_bound, plan_shape,
    )  # fmt: skip


@st.composite
def requests(draw: st.DrawFn, engine: PolicyEngine) -> AccessRequest:
    agency = draw(st.sampled_from(AGENCIES))
    standard = engine.policy_set.standard
    resource = draw(st.sampled_from([r.name for r in standard.resources]))
    fields = [f.name for f in standard.resource(resource).fields]
    case_index = draw(st.one_of(st.none(), st.integers(0, len(DATASET) - 1)))
    case = None if case_index is None else _case(case_index, copy=draw(st.booleans()))
    filterable = list(standard.resource(resource).filterable_fields)
    filters = draw(st.dictionaries(st.sampled_from(filterable), st.just("X1"), max_size=2))
    return AccessRequest(
        requester_agency=agency,
        requester_kind=KINDS[agency[:2]],
        resource=resource,
        purpose=draw(st.sampled_from([p.code for p in standard.purposes])),
        operator_id="op",
        time=datetime(2025, 6, 1, 2, tzinfo=UTC) + timedelta(days=draw(st.integers(0, 3))),
        case_number=None if case is None else case.court_case_number,
        case=case,
        requested_fields=draw(
            st.one_of(st.none(), st.sets(st.sampled_from(fields), min_size=1).map(frozenset))
        ),
        filters=filters,
    )


def test_a_remembered_decision_is_a_fresh_one(shipped_engine: PolicyEngine) -> None:
    engine = PolicyEngine(shipped_engine.policy_set)
    seen: list[AccessRequest] = []

    @settings(
        max_examples=300,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(requests(engine))
    def run(request: AccessRequest) -> None:
        seen.append(request)
        fresh = PolicyEngine(engine.policy_set).decide(request)
        assert _shape(engine.decide(request)) == _shape(fresh)
        assert _shape(engine.decide(request)) == _shape(fresh)  # now from the memo

    run()
    # Every earlier request again, after all the others filled the memo: still right.
    for request in seen:
        assert _shape(engine.decide(request)) == _shape(
            PolicyEngine(engine.policy_set).decide(request)
        )
    assert engine.decision_memo_hits > 0


def test_each_input_of_the_key_changes_the_decision_it_gets(
    shipped_engine: PolicyEngine,
) -> None:
    engine = PolicyEngine(shipped_engine.policy_set)
    base = AccessRequest(
        requester_agency="FY640104",
        requester_kind="court",
        resource="person",
        purpose="TRIAL",
        operator_id="op",
        time=datetime(2025, 6, 1, 2, tzinfo=UTC),
        case_number=DATASET.case(20).case["court_case_number"],
        case=_case(20),
    )
    first = engine.decide(base)
    assert engine.decide(base) is first
    secret = _case(20)
    secret_record = {**dict(secret.record or {}), "secrecy_mark": "SECRET"}
    variants = {
        "a case record fetched anew": replace(base, case=_case(20, copy=True)),
        "another secrecy mark": replace(
            base, case=replace(secret, secrecy_mark="SECRET", record=secret_record)
        ),
        "another purpose": replace(base, purpose="PRIOR_RECORD_CHECK"),
        "other fields": replace(base, requested_fields=frozenset({"name"})),
        "a filter": replace(base, filters={"id_number": "11010519491231002X"}),
        "another agency": replace(base, requester_agency="FY640105"),
        "another day": replace(base, time=base.time + timedelta(days=1)),
        "a delivery, not a read": replace(base, channel="delivery"),
    }
    for what, variant in variants.items():
        decision = engine.decide(variant)
        assert decision is not first, what
        assert _shape(decision) == _shape(PolicyEngine(engine.policy_set).decide(variant)), what
    assert engine.decide(variants["another secrecy mark"]).outcome.value == "not_found"


def test_rules_that_read_the_time_are_never_remembered(
    standard: Standard, write_policies: PolicyWriter
) -> None:
    engine = engine_for(
        standard,
        write_policies,
        [perm("office-hours", condition="request.time.getHours() < 24")],
    )
    assert engine._index.decision_attrs is None
    request = AccessRequest(
        requester_agency="FY640104",
        requester_kind="court",
        resource="person",
        purpose="TRIAL",
        operator_id="op",
        time=datetime(2025, 6, 1, 2, tzinfo=UTC),
        case_number="(2024)宁0104刑初1号",
        case=CaseContext("C1", None, "(2024)宁0104刑初1号", frozenset({"FY640104"})),
    )
    engine.decide(request)
    engine.decide(request)
    assert engine.decision_memo_hits == 0


def test_every_input_of_a_decision_is_classified_for_the_key() -> None:
    # A field added to the request or the case must be put in the key (or said to decide
    # only through the conditions that read it), or a remembered decision could be stale.
    request_fields = {f.name for f in dataclasses.fields(AccessRequest)}
    assert request_fields == set(REQUEST_KEY_FIELDS) | set(REQUEST_READ_FIELDS)
    assert {f.name for f in dataclasses.fields(CaseContext)} == set(CASE_KEY_FIELDS)
    # A grant is in the key whole, by value: every field of it, so each is classified.
    assert {f.name for f in dataclasses.fields(Grant)} == set(GRANT_KEY_FIELDS)
    grant = _summary_grant()
    assert hash(grant) == hash(_summary_grant())  # by value, not by identity
    assert grant == _summary_grant()
    with pytest.raises(dataclasses.FrozenInstanceError):
        grant.fields = frozenset()  # type: ignore[misc]


def _execution_request(**changes: Any) -> AccessRequest:
    case = _case(6)
    request = AccessRequest(
        requester_agency="JC640104",
        requester_kind="procuratorate",
        resource="judgment",
        # 减刑假释监督: the judgment's result only, no 判决主文 without a grant (under
        # EXECUTION_SUPERVISION an effective judgment's 主文 is granted: 社区矫正法 第20条).
        purpose="COMMUTATION_PAROLE",
        operator_id="op",
        time=datetime(2026, 12, 7, 2, tzinfo=UTC),
        case_number=case.court_case_number,
        case=case,
        requested_fields=frozenset({"summary", "judgment_date"}),
        record_id="JD0000000601",
    )
    return replace(request, **changes)


def _summary_grant(**changes: Any) -> Grant:
    grant = Grant(
        grant_id="g1",
        requester_agency="JC640104",
        resource="judgment",
        fields=frozenset({"summary"}),
        purpose="COMMUTATION_PAROLE",
        case_id="C00000006",
        record_ids=None,
        valid_from=datetime(2026, 12, 7, tzinfo=UTC),
        valid_until=datetime(2026, 12, 10, tzinfo=UTC),
    )
    return replace(grant, **changes)


def test_each_field_of_a_grant_changes_the_decision_it_gets(
    shipped_engine: PolicyEngine,
) -> None:
    engine = PolicyEngine(shipped_engine.policy_set)
    without = engine.decide(_execution_request())
    assert "summary" not in without.permitted_fields
    base = _execution_request(grants=(_summary_grant(),))
    first = engine.decide(base)
    assert "summary" in first.permitted_fields
    assert first.grant_ids == ("g1",)
    assert engine.decide(base) is first
    day = timedelta(days=1)
    variants = {
        "grant_id": _summary_grant(grant_id="g2"),
        "requester_agency": _summary_grant(requester_agency="JC640105"),
        "resource": _summary_grant(resource="indictment"),
        "fields": _summary_grant(fields=frozenset({"summary", "verdict"})),
        "purpose": _summary_grant(purpose="EXECUTION_SUPERVISION"),
        "case_id": _summary_grant(case_id="C00000001"),
        "record_ids": _summary_grant(record_ids=frozenset({"JD0000000602"})),
        "valid_from": _summary_grant(valid_from=base.time + timedelta(hours=1)),
        "valid_until": _summary_grant(valid_until=base.time - day),
    }
    assert set(variants) == set(GRANT_KEY_FIELDS)
    for what, grant in variants.items():
        variant = replace(base, grants=(grant,))
        decision = engine.decide(variant)
        assert decision is not first, what
        fresh = PolicyEngine(engine.policy_set).decide(variant)
        assert _shape(decision) == _shape(fresh), what
        assert decision.grant_ids == fresh.grant_ids, what
    # A grant for named records counts for a fetch of one of them only.
    named = replace(base, grants=(_summary_grant(record_ids=frozenset({"JD0000000601"})),))
    assert engine.decide(named).grant_ids == ("g1",)
    assert engine.decide(replace(named, record_id="JD0000000602")).grant_ids == ()
    assert engine.decide(replace(named, record_id=None)).grant_ids == ()
    # Outside its window (the request's own time decides, not the day).
    late = replace(base, time=datetime(2026, 12, 10, tzinfo=UTC))
    assert "summary" not in engine.decide(late).permitted_fields


def test_a_decision_for_a_delivery_is_never_remembered_for_a_read(
    shipped_engine: PolicyEngine,
) -> None:
    # The procuratorate's copy of an effective judgment carries its 判决主文 (a permission for
    # deliveries only); its own read of the same judgment, asked right after, does not.
    engine = PolicyEngine(shipped_engine.policy_set)
    read = AccessRequest(
        requester_agency="JC640104",
        requester_kind="procuratorate",
        resource="judgment",
        purpose="EXECUTION_SUPERVISION",
        operator_id="op",
        time=datetime(2025, 6, 1, 2, tzinfo=UTC),
        case_number=DATASET.case(55).case["court_case_number"],
        case=replace(_case(55), stage="EXECUTION",
                     handling_agencies=frozenset({"FY640104", "JC640104"})),
        requested_fields=frozenset({"judgment_id", "summary"}),
    )  # fmt: skip
    delivered = replace(read, channel="delivery")
    judgment = dict(DATASET.case(55).judgment[0])
    subjects = SubjectRecords()
    subjects.add("person", "person_id", [dict(p) for p in DATASET.case(55).person])
    for access, summary in ((delivered, True), (read, False), (delivered, True)):
        decision = engine.decide(access)
        verdict = engine.filter_record(decision, access, judgment, subjects)
        assert verdict.released, verdict.reason
        assert ("summary" in verdict.record) is summary, access.channel
