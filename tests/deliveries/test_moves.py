"""The case as a delivery leaves it (moves.py), against an oracle read from the YAML files.

The oracle does not use the standard's model: it reads which fields are parties from the
resource files themselves and looks for the recipient's code (or its court's 法院代字 inside a
案号) among the record's values. Properties: a delivery never makes any agency but its
recipient a party; it makes the recipient one only when the record names it and the kind moves
the case to a stage it is not in yet; and nothing else about the case changes.
"""

from __future__ import annotations

import functools
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.deliveries.moves import as_received, recipient_mismatch
from gateway.policy.decision import CaseContext
from gateway.standard import Standard

_RESOURCES = Path(__file__).parents[2] / "policies" / "standard" / "resources"
_STAGES = ("INVESTIGATION", "ARREST_REVIEW", "PROSECUTION_REVIEW", "TRIAL", "EXECUTION", "CLOSED")


@functools.cache
def _party_fields(resource: str) -> list[dict[str, Any]]:
    spec = yaml.safe_load((_RESOURCES / f"{resource}.yaml").read_text(encoding="utf-8"))
    return [f for f in spec["fields"] if f.get("party")]


def _agencies() -> list[dict[str, Any]]:
    path = _RESOURCES.parent / "agencies.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    agencies: list[dict[str, Any]] = data["agencies"]
    return agencies


_AGENCIES = _agencies()
_KIND_OF = {a["code"]: a["kind"] for a in _AGENCIES}
_COURT_CODES = {a["court_code"]: a["code"] for a in _AGENCIES if a.get("court_code")}


def _values(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def _named_by(resource: str, record: dict[str, Any]) -> set[str]:
    """Every agency the record names as a party, found by reading its values."""
    named: set[str] = set()
    for field in _party_fields(resource):
        for value in _values(record.get(field["name"])):
            if field["type"] == "case_number":
                court_code = value[value.index(")") + 1 : value.index("刑")]
                if court_code in _COURT_CODES:
                    named.add(_COURT_CODES[court_code])
            elif value in _KIND_OF:
                named.add(value)
    if resource == "case":
        named |= set(_values(record.get("handling_agencies")))
    return named


def _case_number(court: str) -> str:
    return next(f"(2025){c}刑初1号" for c, code in _COURT_CODES.items() if code == court)


@st.composite
def _deliveries(draw: st.DrawFn, standard: Standard) -> dict[str, Any]:
    kind = draw(st.sampled_from(standard.deliveries))
    recipients = [a for a in _AGENCIES if a["kind"] in kind.recipients]
    recipient = draw(st.sampled_from(recipients))
    codes = sorted(_KIND_OF)
    handling = draw(st.frozensets(st.sampled_from(codes), max_size=5))
    stage = draw(st.sampled_from(_STAGES))
    record: dict[str, Any] | None = {}
    assert record is not None
    # Values drawn often from the recipient and its own kind: the cases that matter.
    same_kind = [a["code"] for a in _AGENCIES if a["kind"] == recipient["kind"]]
    pool = st.sampled_from([recipient["code"], *same_kind, *codes])
    for field in _party_fields(kind.resource):
        value: Any
        if field["type"] == "case_number":
            value = draw(
                st.none() | st.sampled_from(sorted(_COURT_CODES.values())).map(_case_number)
            )
        elif field.get("agency_kind"):
            of_kind = [a["code"] for a in _AGENCIES if a["kind"] == field["agency_kind"]]
            value = draw(st.none() | st.sampled_from(of_kind))
        else:
            value = draw(st.none() | pool)
        record[field["name"]] = value
    if kind.resource == "case":
        record["handling_agencies"] = draw(st.lists(pool, max_size=4, unique=True))
    if draw(st.integers(0, 4)) == 0:
        record = None
    case_record = {"case_id": "C1", "stage": stage, "handling_agencies": sorted(handling)}
    case = CaseContext(
        case_id="C1",
        police_case_number="A6401040000002024112156",
        court_case_number=None,
        handling_agencies=handling,
        stage=stage,
        secrecy_mark="NONE",
        record=draw(st.sampled_from([None, case_record])),
        stationed_procuratorates=frozenset({"JC640001"}),
    )
    return {
        "kind": kind,
        "recipient": standard.agency(recipient["code"]),
        "case": case,
        "record": record,
    }


@settings(
    max_examples=600, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_a_delivery_makes_no_party_but_its_named_recipient(
    standard: Standard, data: st.DataObject
) -> None:
    d = data.draw(_deliveries(standard))
    kind, recipient, case, record = d["kind"], d["recipient"], d["case"], d["record"]
    resource = standard.resource(kind.resource)

    received = as_received(standard, case, kind, recipient, resource, record)

    moves = kind.on_accept_stage is not None and kind.on_accept_stage != case.stage
    added = received.handling_agencies - case.handling_agencies
    assert added <= {recipient.code}  # never any other agency
    assert case.handling_agencies <= received.handling_agencies  # and none taken away
    if not moves:
        assert received == case
        return
    named = record is None or recipient.code in _named_by(kind.resource, record)
    assert (recipient.code in received.handling_agencies) == (
        named or recipient.code in case.handling_agencies
    )
    assert received.stage == kind.on_accept_stage
    unchanged = replace(
        received, handling_agencies=case.handling_agencies, stage=case.stage, record=case.record
    )
    assert unchanged == case  # nothing else about the case
    if case.record is None:
        assert received.record is None
    else:
        assert received.record is not None
        assert received.record["stage"] == received.stage
        assert set(received.record["handling_agencies"]) == received.handling_agencies


@settings(
    max_examples=600, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_a_record_naming_another_agency_of_the_recipients_kind_is_not_sent(
    standard: Standard, data: st.DataObject
) -> None:
    d = data.draw(_deliveries(standard))
    kind, recipient, record = d["kind"], d["recipient"], d["record"]
    if record is None:
        return
    mismatch = recipient_mismatch(standard, standard.resource(kind.resource), record, recipient)
    named = _named_by(kind.resource, record)
    others = {a for a in named if _KIND_OF[a] == recipient.kind and a != recipient.code}
    expected = kind.resource != "case" and recipient.code not in named and bool(others)
    assert (mismatch is not None) == expected
    if mismatch is not None:
        names = {
            a
            for a in _named_by(kind.resource, {mismatch: record[mismatch]})
            if _KIND_OF[a] == recipient.kind
        }
        assert names  # the field named is one that misnames
        assert recipient.code not in names
