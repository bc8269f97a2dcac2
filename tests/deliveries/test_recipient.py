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
