"""A delivery's content is decided for the recipient, and refused (not stripped) with the field.

The shipped policy set is the engine; what a read by the recipient would strip is the oracle.
"""

from __future__ import annotations

from typing import Any

import pytest

from gateway.deliveries.recipient import check_for_recipient
from gateway.errors import Forbidden
from gateway.policy import PolicyEngine
from gateway.policy.decision import Outcome
from tests.policy.conftest import person, request, shipped, shipped_engine, standard

__all__ = ["shipped", "shipped_engine", "standard"]  # the fixtures used here


def _record(**fields: Any) -> dict[str, Any]:
    return person("P1", "C1", name="张某", sex="1", id_number="11010519491231002X", **fields)


def test_a_record_the_recipient_receives_whole_passes(shipped_engine: PolicyEngine) -> None:
    record = person("P1", "C1")
    access = request("FY640104", "person", "TRIAL", fields=set(record))
    verdict = check_for_recipient(shipped_engine, access, record)
    assert verdict.released
    assert dict(verdict.record) == record


@pytest.mark.parametrize(
    ("agency", "purpose", "extra"),
    [
        ("FY640104", "TRIAL", {}),
        ("JC640104", "PROSECUTION_REVIEW", {}),
        ("GA640104", "INVESTIGATION", {}),
        ("SF640104", "COMMUNITY_CORRECTION", {}),
        ("JY640001", "SENTENCE_EXECUTION", {}),
        ("FY640104", "TRIAL", {"juvenile_record_sealed": True, "is_minor": True}),
        ("SF640104", "COMMUNITY_CORRECTION", {"protected_witness": True, "role": "WITNESS"}),
        ("JC640104", "PROSECUTION_REVIEW", {"sexual_offence_victim": True, "role": "VICTIM"}),
    ],
)
def test_refused_exactly_when_a_read_would_strip_and_the_field_is_named(
    shipped_engine: PolicyEngine, agency: str, purpose: str, extra: dict[str, Any]
) -> None:
    record = _record(**extra)
    access = request(agency, "person", purpose, fields=set(record))
    decision = shipped_engine.decide(access)
    if decision.outcome is not Outcome.ALLOW:
        with pytest.raises(Forbidden):
            check_for_recipient(shipped_engine, access, record)
        return
    read = shipped_engine.filter_record(decision, access, record)
    stripped = {k for k, v in record.items() if read.record.get(k) != v} if read.released else None
    if stripped == set():
        assert check_for_recipient(shipped_engine, access, record).released
        return
    with pytest.raises(Forbidden) as info:
        check_for_recipient(shipped_engine, access, record)
    if stripped is not None:
        assert info.value.extra["field"] in stripped
        assert set(info.value.extra["fields"]) >= stripped
        assert info.value.extra["field"] in info.value.detail


def test_some_case_shows_each_outcome(shipped_engine: PolicyEngine) -> None:
    """The table above is not vacuous: a whole pass, a named field and a withheld record."""
    whole = person("P1", "C1")
    check_for_recipient(
        shipped_engine, request("FY640104", "person", "TRIAL", fields=set(whole)), whole
    )
    outcomes = set()
    for agency, purpose in (
        ("SF640104", "COMMUNITY_CORRECTION"),
        ("JY640001", "SENTENCE_EXECUTION"),
        ("GA640104", "INVESTIGATION"),
        ("FY640104", "TRIAL"),
    ):
        for extra in ({}, {"protected_witness": True, "role": "WITNESS"}):
            record = _record(**extra)
            try:
                check_for_recipient(
                    shipped_engine, request(agency, "person", purpose, fields=set(record)), record
                )
                outcomes.add("whole")
            except Forbidden as exc:
                outcomes.add("field" if "field" in exc.extra else "record")
    assert outcomes == {"whole", "field", "record"}


def test_a_recipient_outside_the_case_is_refused(shipped_engine: PolicyEngine) -> None:
    record = person("P1", "C1")
    access = request("FY640105", "person", "TRIAL", handling=("FY640104",), fields=set(record))
    with pytest.raises(Forbidden, match="may not receive this person") as info:
        check_for_recipient(shipped_engine, access, record)
    assert "field" not in info.value.extra


def _case(sealed: bool) -> dict[str, Any]:
    return {
        "case_id": "C1", "police_case_number": "A640104000000202401000001",
        "case_name": "张某盗窃案", "case_category": "050100", "filing_date": "2024-01-02",
        "division": "640104", "stage": "ARREST_REVIEW",
        "handling_agencies": ["GA640104", "JC640104"],
        "court_case_number": None, "secrecy_mark": "NONE", "brief": "张某（16岁）盗窃……",
        "has_sealed_juvenile": sealed, "closed_trial": False, "work_secret": False,
    }  # fmt: skip


FLAGS = frozenset({"has_sealed_juvenile"})  # case.has_sealed_juvenile is decision_only


@pytest.mark.parametrize("sealed", [False, True])
def test_a_decision_only_flag_decides_but_is_no_part_of_the_delivered_case(
    shipped_engine: PolicyEngine, sealed: bool
) -> None:
    """提请批准逮捕 (ARREST_REVIEW): the flag is never released to anyone (不予共享), yet the
    delivery passes, because the flag is no part of the delivered document; with the flag set,
    the case name and brief still reach the procuratorate by the judicial case-handling
    exception of 刑事诉讼法 第286条第2款 (nl.juvenile.sealed-case-details)."""
    record = _case(sealed)
    access = request("JC640104", "case", "ARREST_REVIEW", fields=set(record) - FLAGS)
    with pytest.raises(Forbidden) as info:  # without the standard's definition: refused
        check_for_recipient(shipped_engine, access, record)
    assert info.value.extra["field"] == "has_sealed_juvenile"
    verdict = check_for_recipient(shipped_engine, access, record, decision_only=FLAGS)
    assert "has_sealed_juvenile" not in verdict.record
    assert {k: verdict.record[k] for k in ("case_name", "brief")} == {
        "case_name": record["case_name"],
        "brief": record["brief"],
    }
    if sealed:
        exception = "nl.juvenile.sealed-case-details.judicial-case-handling"
        assert exception in verdict.rule_ids


def test_a_field_the_negative_list_withholds_is_still_refused_with_the_field_named(
    shipped_engine: PolicyEngine,
) -> None:
    """The flag is decided on: for a recipient outside the judicial exception (the committee's
    supervised case), a sealed case's name and brief are withheld, so the delivery is refused
    naming them, and never stripped; the same case unsealed goes whole."""
    access = request(
        "ZF640000", "case", "OVERSIGHT", approval_reference="宁政法督〔2024〕1号",
        fields=set(_case(True)) - FLAGS,
    )  # fmt: skip
    assert check_for_recipient(shipped_engine, access, _case(False), decision_only=FLAGS)
    with pytest.raises(Forbidden) as info:
        check_for_recipient(shipped_engine, access, _case(True), decision_only=FLAGS)
    assert set(info.value.extra["fields"]) == {"brief", "case_name"}
    assert info.value.extra["field"] in info.value.detail
    assert "nl.juvenile.sealed-case-details" in info.value.extra["rule_ids"]
