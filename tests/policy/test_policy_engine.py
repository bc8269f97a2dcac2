"""Decisions: default deny, fields, negative list on top, exceptions, NCND, case binding, CEL."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.policy import Outcome, PolicyEngine, load_policy_engine
from gateway.policy.decision import SubjectRecords
from gateway.standard import Standard
from tests.policy.conftest import (
    CST,
    POLICIES,
    PolicyWriter,
    engine_for,
    item,
    perm,
    person,
    request,
)

SECRET = 'request.case_secrecy_mark != null && request.case_secrecy_mark != "NONE"'

# -- default deny and request checks ------------------------------------------------------


def test_no_permission_is_default_deny(standard: Standard, write_policies: PolicyWriter) -> None:
    engine = engine_for(standard, write_policies, [perm("a")])
    decision = engine.decide(request("JC640104"))
    assert decision.outcome is Outcome.DENY
    assert decision.reason.startswith("default deny")
    assert decision.rule_ids == ()
    assert decision.policy_version == engine.version
    verdict = engine.filter_record(decision, request("JC640104"), person())
    assert not verdict.released
    assert not verdict.conceal
    assert verdict.record == {}


@pytest.mark.parametrize(
    ("req", "reason"),
    [
        (request(resource="spaceship"), "unknown resource"),
        (request(purpose="GOSSIP"), "unknown purpose"),
        (request("FY999999", kind="court"), "not a court agency"),
        (request("FY640104", kind="procuratorate"), "not a procuratorate agency"),
    ],
)
def test_unknown_names_are_denied(
    standard: Standard, write_policies: PolicyWriter, req: Any, reason: str
) -> None:
    engine = engine_for(standard, write_policies, [perm("a")])
    decision = engine.decide(req)
    assert decision.outcome is Outcome.DENY
    assert reason in decision.reason


def test_fields_are_granted_intersect_requested(
    standard: Standard, write_policies: PolicyWriter
) -> None:
    engine = engine_for(standard, write_policies, [perm("a", fields=["person_id", "name", "sex"])])
    decision = engine.decide(request(fields={"name", "phone", "nickname"}))
    assert decision.allowed
    assert decision.rule_ids == ("a",)
    assert decision.permitted_fields == {"name"}
    assert decision.withheld_fields == {"phone"}  # unknown fields are the exchange's 422
    everything = engine.decide(request())
    assert everything.permitted_fields == {"person_id", "name", "sex"}
    assert "phone" in everything.withheld_fields
    assert "nickname" not in everything.withheld_fields


def test_grants_are_unioned(standard: Standard, write_policies: PolicyWriter) -> None:
    engine = engine_for(
        standard,
        write_policies,
        [perm("a", fields=["name"]), perm("b", grantee={"agency": "FY640104"}, fields=["sex"])],
    )
    decision = engine.decide(request(fields={"name", "sex"}))
    assert decision.permitted_fields == {"name", "sex"}
    assert set(decision.rule_ids) == {"a", "b"}


def test_not_shared_fields_never_leave(standard: Standard, write_policies: PolicyWriter) -> None:
    engine = engine_for(standard, write_policies, [perm("ti", resource="technical_investigation")])
    decision = engine.decide(request(resource="technical_investigation"))
    assert "material_summary" not in decision.permitted_fields
    assert "material_summary" in decision.withheld_fields


def test_nothing_permitted_is_a_deny(standard: Standard, write_policies: PolicyWriter) -> None:
    engine = engine_for(standard, write_policies, [perm("a", fields=["name"])])
    decision = engine.decide(request(fields={"phone"}))
    assert decision.outcome is Outcome.DENY
    assert "no requested field" in decision.reason


def test_validity_window_and_role(standard: Standard, write_policies: PolicyWriter) -> None:
    engine = engine_for(
        standard,
        write_policies,
        [
            perm("window", valid_from="2025-06-01", valid_until="2025-06-30", fields=["name"]),
            perm("judges", grantee={"kind": "court", "role": "judge"}, fields=["sex"]),
        ],
    )
    inside = engine.decide(request(time=datetime(2025, 6, 30, 23, 59, tzinfo=CST)))
    assert inside.permitted_fields == {"name"}
    # 2025-06-30T16:30Z is 2025-07-01 00:30 in China Standard Time: outside the window.
    after = engine.decide(request(time=datetime.fromisoformat("2025-06-30T16:30:00+00:00")))
    assert after.outcome is Outcome.DENY
    before = engine.decide(request(time=datetime(2025, 5, 31, 23, 0, tzinfo=CST)))
    assert before.outcome is Outcome.DENY
    judge = engine.decide(request(role="judge"))
    assert judge.permitted_fields == {"name", "sex"}


def test_request_condition(standard: Standard, write_policies: PolicyWriter) -> None:
    engine = engine_for(
        standard, write_policies, [perm("staged", condition='request.case_stage == "TRIAL"')]
    )
    assert engine.decide(request(stage="TRIAL")).allowed
    assert not engine.decide(request(stage="INVESTIGATION")).allowed


# -- negative list on top -------------------------------------------------------------------


def test_negative_list_beats_any_permission(
    standard: Standard, write_policies: PolicyWriter
) -> None:
    permissions = [perm("a"), perm("b", grantee={"agency": "FY640104"})]
    engine = engine_for(
        standard,
        write_policies,
        permissions,
        [item("nl.name", action="withhold_fields", fields=["name"])],
    )
    decision = engine.decide(request(fields={"name", "sex"}))
    assert decision.permitted_fields == {"sex"}
    assert decision.withheld_fields == {"name"}
    assert "nl.name" in decision.rule_ids
    verdict = engine.filter_record(decision, request(), person(name="张三", sex="1"))
    assert verdict.record == {"sex": "1"}

    denied = engine_for(
        standard, write_policies, permissions, [item("nl.deny", action="deny_request")]
    )
    outcome = denied.decide(request())
    assert outcome.outcome is Outcome.DENY
    assert outcome.rule_ids == ("nl.deny",)


def test_record_level_items_split_a_search(
    standard: Standard, write_policies: PolicyWriter
) -> None:
    engine = engine_for(
        standard,
        write_policies,
        [perm("a", fields=["person_id", "name", "id_number"])],
        [
            item("nl.sealed", condition="record.juvenile_record_sealed", conceal=True),
            item("nl.adults", condition="!record.is_minor", exceptions=[]),
            item(
                "nl.wit",
                action="withhold_fields",
                fields=["name"],
                condition="record.protected_witness",
            ),
            item(
                "nl.mask",
                action="mask_fields",
                fields=["id_number"],
                mask={"kind": "keep", "first": 6, "last": 4},
            ),
        ],
    )
    req = request()
    decision = engine.decide(req)
    records = [
        person("P1", is_minor=True, name="甲", id_number="11010519491231002X"),
        person("P2", is_minor=True, juvenile_record_sealed=True, name="乙"),
        person("P3", is_minor=False, name="丙"),
        person(
            "P4", is_minor=True, protected_witness=True, name="丁", id_number="440524188001010014"
        ),
    ]
    verdicts = [engine.filter_record(decision, req, r) for r in records]
    assert [v.released for v in verdicts] == [True, False, False, True]
    assert verdicts[0].record == {
        "person_id": "P1",
        "name": "甲",
        "id_number": "110105********002X",
    }
    assert verdicts[0].masked_fields == {"id_number"}
    assert verdicts[1].conceal
    assert verdicts[1].rule_ids == ("nl.sealed",)
    assert not verdicts[2].conceal
    assert verdicts[2].rule_ids == ("nl.adults",)
    assert verdicts[3].record == {"person_id": "P4", "id_number": "440524********0014"}
    assert "name" in verdicts[3].withheld_fields
    assert "nl.wit" in verdicts[3].rule_ids


def test_strongest_mask_wins(standard: Standard, write_policies: PolicyWriter) -> None:
    masks = [
        item(
            "m.keep",
            action="mask_fields",
            fields=["id_number"],
            mask={"kind": "keep", "first": 6, "last": 4},
        ),
        item(
            "m.hash",
            action="mask_fields",
            fields=["id_number"],
            mask={"kind": "hash"},
            condition="record.is_minor",
        ),
    ]
    engine = engine_for(standard, write_policies, [perm("a")], masks)
    req = request(fields={"id_number"})
    decision = engine.decide(req)
    adult = engine.filter_record(decision, req, person(id_number="11010519491231002X"))
    minor = engine.filter_record(
        decision, req, person(id_number="11010519491231002X", is_minor=True)
    )
    assert adult.record["id_number"] == "110105********002X"
    assert len(minor.record["id_number"]) == 16
    assert "*" not in minor.record["id_number"]
    assert "m.hash" in minor.rule_ids


# -- exceptions -----------------------------------------------------------------------------


def _sealed(**exception: Any) -> list[dict[str, Any]]:
    exc = {"id": "nl.sealed.judicial", "legal_basis": "第286条", **exception}
    return [
        item("nl.sealed", condition="record.juvenile_record_sealed", conceal=True, exceptions=[exc])
    ]


@pytest.mark.parametrize(
    ("exception", "lifted"),
    [
        ({"condition": 'request.purpose == "TRIAL"'}, True),
        ({"condition": 'request.purpose == "STATISTICS"'}, False),
        ({"condition": "true", "valid_from": "2025-06-02"}, False),
        ({"condition": "true", "valid_until": "2025-05-31"}, False),
        ({"condition": "true", "valid_from": "2025-06-01", "valid_until": "2025-06-01"}, True),
        ({"condition": 'record.person_id == "P1"'}, True),
        ({"condition": 'record.person_id == "P2"'}, False),
    ],
)
def test_exception_lifts_only_while_valid_and_holding(
    standard: Standard, write_policies: PolicyWriter, exception: dict[str, Any], lifted: bool
) -> None:
    engine = engine_for(standard, write_policies, [perm("a")], _sealed(**exception))
    req = request()
    decision = engine.decide(req)
    verdict = engine.filter_record(decision, req, person("P1", juvenile_record_sealed=True))
    assert verdict.released is lifted
    assert verdict.conceal is (not lifted)
    if lifted:
        assert "nl.sealed.judicial" in verdict.rule_ids


# -- neither confirm nor deny ----------------------------------------------------------------


def test_request_level_conceal_is_not_found(
    standard: Standard, write_policies: PolicyWriter
) -> None:
    engine = engine_for(
        standard,
        write_policies,
        [perm("a")],
        [
            item(
                "nl.secret",
                resource="*",
                action="deny_request",
                conceal=True,
                condition=SECRET,
            )
        ],
    )
    secret = request(secrecy="JIMI")
    decision = engine.decide(secret)
    assert decision.outcome is Outcome.NOT_FOUND
    assert decision.rule_ids == ("nl.secret",)
    verdict = engine.filter_record(decision, secret, person())
    assert not verdict.released
    assert verdict.conceal
    assert engine.decide(request(secrecy="NONE")).allowed
    # A requester with no permission learns nothing: plain default deny, not NOT_FOUND.
    assert engine.decide(request("JC640104", secrecy="JIMI")).outcome is Outcome.DENY


# -- case binding ----------------------------------------------------------------------------


def test_case_binding(standard: Standard, write_policies: PolicyWriter) -> None:
    engine = engine_for(standard, write_policies, [perm("a")])
    no_case = engine.decide(request(case=None))
    assert no_case.outcome is Outcome.DENY
    assert no_case.reason.startswith("case binding")
    assert no_case.rule_ids == ("a",)
    number = "(2024)宁0104刑初1号"
    other = engine.decide(replace(request(handling=("FY640105",)), case_number=number))
    assert other.outcome is Outcome.DENY
    assert "handles no case numbered" in other.reason
    # a case the requester does not handle reads exactly like an unknown one (no leak)
    unknown = engine.decide(replace(request(case=None), case_number=number))
    assert unknown.reason == other.reason
    assert "C1" not in other.reason
    req = request()
    decision = engine.decide(req)
    assert decision.bound_case_id == "C1"
    inside = engine.filter_record(decision, req, person("P1", "C1"))
    outside = engine.filter_record(decision, req, person("P2", "C2"))
    assert inside.released
    assert not outside.released
    assert outside.conceal
    assert "case binding" in outside.reason


def _subject_person(person_id: str, case_id: str, id_number: str) -> dict[str, object]:
    return {
        "person_id": person_id, "case_id": case_id, "name": "某", "sex": "1",
        "id_number": id_number, "role": "DEFENDANT", "is_minor": False,
        "juvenile_record_sealed": False, "protected_witness": False,
        "sexual_offence_victim": False,
    }  # fmt: skip


def test_case_binding_modes(standard: Standard, write_policies: PolicyWriter) -> None:
    engine = engine_for(
        standard,
        write_policies,
        [
            perm(
                "prior",
                resource="judgment",
                purposes=["PRIOR_RECORD_CHECK"],
                case_binding="request",
                reach={"kind": "bound_case_persons", "reason": "前科审查"},
            ),
            perm("free", resource="judgment", purposes=["TRIAL"], case_binding=False),
        ],
    )
    prior = request(resource="judgment", purpose="PRIOR_RECORD_CHECK")
    decision = engine.decide(prior)
    assert decision.allowed
    assert decision.bound_case_id == "C1"
    assert decision.needs_case_persons
    assert not decision.records_bound  # other cases' records are needed: no upstream case filter
    same_person = "11010519491231002X"
    subjects = SubjectRecords(case_persons={"C1": [_subject_person("P-NOW", "C1", same_person)]})
    subjects.add("person", "person_id", [_subject_person("P-OLD", "C-OLD", same_person)])
    subjects.add("person", "person_id", [_subject_person("P-X", "C-X", "440524188001010014")])
    old_case = {"judgment_id": "J1", "case_id": "C-OLD", "defendant_id": "P-OLD"}
    verdict = engine.filter_record(decision, prior, old_case, subjects)
    assert verdict.released
    assert "prior" in verdict.rule_ids
    # Someone else's judgment, an unknown defendant, no case persons: not there at all.
    for record, known in (
        ({"judgment_id": "J2", "case_id": "C-X", "defendant_id": "P-X"}, subjects),
        ({"judgment_id": "J3", "case_id": "C-Y", "defendant_id": "P-NOBODY"}, subjects),
        (old_case, SubjectRecords()),
        (old_case, None),
    ):
        refused = engine.filter_record(decision, prior, record, known)
        assert not refused.released
        assert refused.conceal
    assert not engine.decide(replace(prior, case=None)).allowed
    free = request(resource="judgment", case=None)
    assert engine.decide(free).allowed


# -- CEL runtime failures ------------------------------------------------------------------


def test_cel_failure_on_a_record_withholds_it(
    standard: Standard, write_policies: PolicyWriter
) -> None:
    engine = engine_for(
        standard,
        write_policies,
        [perm("a", fields=["person_id", "name"])],
        [
            item(
                "nl.minor", action="withhold_fields", fields=["name"], condition="record.is_minor"
            ),
            item("nl.hidden", condition="record.protected_witness", conceal=True),
        ],
    )
    req = request()
    decision = engine.decide(req)
    broken = {"person_id": "P9", "case_id": "C1", "name": "x", "is_minor": False}
    verdict = engine.filter_record(decision, req, broken)
    assert not verdict.released
    assert "CEL error in rule nl.hidden" in verdict.reason
    assert verdict.rule_ids == ("nl.hidden",)
    assert verdict.conceal  # the failing rule conceals
    typed = person("P8", name="y", is_minor="yes")  # string where a bool is expected
    verdict = engine.filter_record(decision, req, typed)
    assert not verdict.released
    assert "nl.minor" in verdict.reason
    assert not verdict.conceal


def test_cel_failure_on_the_request_denies(
    standard: Standard, write_policies: PolicyWriter
) -> None:
    engine = engine_for(
        standard, write_policies, [perm("a", condition='request.filters.court == "x"')]
    )
    decision = engine.decide(request())
    assert decision.outcome is Outcome.DENY
    assert decision.rule_ids == ("a",)
    assert "CEL error in rule a" in decision.reason
    assert engine.decide(request(filters={"court": "x"})).allowed


def test_record_level_permission_condition(
    standard: Standard, write_policies: PolicyWriter
) -> None:
    engine = engine_for(
        standard,
        write_policies,
        [
            perm("base", fields=["person_id"]),
            perm("suspects", fields=["name"], condition='record.role == "SUSPECT"'),
        ],
    )
    req = request(fields={"person_id", "name"})
    decision = engine.decide(req)
    assert decision.permitted_fields == {"person_id", "name"}
    suspect = engine.filter_record(decision, req, person("P1", role="SUSPECT", name="甲"))
    witness = engine.filter_record(decision, req, person("P2", role="WITNESS", name="乙"))
    assert suspect.record == {"person_id": "P1", "name": "甲"}
    assert "suspects" in suspect.rule_ids
    assert witness.record == {"person_id": "P2"}
    assert "name" in witness.withheld_fields
    only_conditional = engine_for(
        standard, write_policies, [perm("s", condition='record.role == "SUSPECT"')]
    )
    decision = only_conditional.decide(req)
    verdict = only_conditional.filter_record(decision, req, person("P2", role="WITNESS"))
    assert not verdict.released
    assert "no permission" in verdict.reason


# -- robustness ----------------------------------------------------------------------------

_values = st.one_of(
    st.none(), st.booleans(), st.integers(), st.text(max_size=20), st.lists(st.text(max_size=5))
)


_RECORD_KEYS = [
    "person_id", "case_id", "name", "id_number", "birth_date", "address", "phone", "role",
    "is_minor", "juvenile_record_sealed", "protected_witness", "sexual_offence_victim", "x",
]  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from(_RECORD_KEYS), _values))
def test_filter_never_raises(record: dict[str, Any]) -> None:
    engine = _shipped_engine()
    for agency, purpose in (("FY640104", "TRIAL"), ("JC640104", "EXECUTION_SUPERVISION")):
        req = request(agency, purpose=purpose, case=str(record.get("case_id", "C1")))
        decision = engine.decide(req)
        verdict = engine.filter_record(decision, req, record)
        assert set(verdict.record) <= decision.permitted_fields
        json.dumps(engine.explain(req, [record]), ensure_ascii=False, default=str)


_ENGINE: list[PolicyEngine] = []


def _shipped_engine() -> PolicyEngine:
    if not _ENGINE:
        from gateway.standard import load_standard

        _ENGINE.append(load_policy_engine(POLICIES, load_standard(POLICIES / "standard")))
    return _ENGINE[0]


def test_stale_decision_is_decided_anew(
    standard: Standard, write_policies: PolicyWriter, shipped_engine: PolicyEngine
) -> None:
    engine = engine_for(standard, write_policies, [perm("a", fields=["name"])])
    req = request()
    stale = replace(shipped_engine.decide(req), policy_version="sha256:old")
    verdict = engine.filter_record(stale, req, person(name="甲", phone="1"))
    assert verdict.record == {"name": "甲"}


def test_explain_is_json_ready(shipped_engine: PolicyEngine) -> None:
    req = request("FY640104", handling=("FY640104", "JC640104"))
    records = [
        person("P1", name="甲", juvenile_record_sealed=True, is_minor=True),
        person("P2", "C2", name="乙"),
    ]
    doc = shipped_engine.explain(req, records)
    assert json.loads(json.dumps(doc, ensure_ascii=False)) == doc
    assert doc["decision"]["outcome"] == "allow"
    assert doc["policy_version"] == shipped_engine.version
    assert "nl.juvenile.sealed-record.judicial-case-handling" in doc["decision"]["rule_ids"]
    assert doc["records"][0]["released"] is True
    assert doc["records"][0]["id"] == "P1"
    assert doc["records"][1]["conceal"] is True
    assert any(t["effect"] == "lift" for t in doc["trace"])
    assert doc["rule_sources"]["fy.trial.person"].startswith(str(POLICIES / "permissions"))


def test_engine_refuses_another_standard(shipped_engine: PolicyEngine, standard: Standard) -> None:
    other = standard.model_copy(update={"version": "sha256:other"})
    with pytest.raises(ValueError, match="another standard"):
        PolicyEngine(shipped_engine.policy_set, other)


def test_memo_keys_a_condition_on_record_and_request_by_both(
    standard: Standard, write_policies: PolicyWriter
) -> None:
    """A record-level condition that reads request attributes is memoised too (it was
    evaluated afresh on every record), keyed by the attributes as well as the fields."""
    engine = engine_for(
        standard,
        write_policies,
        [perm("a", fields=["person_id"])],
        [item("nl.mixed", condition='request.operator_id == "op-1" && record.is_minor == true')],
    )
    first = request()
    other = replace(first, operator_id="op-2")
    assert first.operator_id == "op-1"
    decided, decided_other = engine.decide(first), engine.decide(other)
    assert not engine.filter_record(decided, first, person("P1", is_minor=True)).released
    hits = engine.cel_memo_hits
    assert not engine.filter_record(decided, first, person("P2", is_minor=True)).released
    assert engine.cel_memo_hits > hits  # remembered
    # The same field values for another operator: not the remembered result.
    assert engine.filter_record(decided_other, other, person("P3", is_minor=True)).released
    assert engine.filter_record(decided, first, person("P4", is_minor=False)).released
    assert not engine.filter_record(decided, first, person("P5", is_minor=True)).released


def test_memo_distinguishes_types(standard: Standard, write_policies: PolicyWriter) -> None:
    engine = engine_for(
        standard,
        write_policies,
        [perm("a", fields=["person_id"])],
        [item("nl.true", condition="record.is_minor == true")],
    )
    req = request()
    decision = engine.decide(req)
    assert not engine.filter_record(decision, req, person("P1", is_minor=True)).released
    # 1 == True in Python, but CEL compares an int with a bool as false: not the memoised True.
    assert engine.filter_record(decision, req, person("P2", is_minor=1)).released
    assert not engine.filter_record(decision, req, person("P3", is_minor=True)).released
    assert engine.cel_memo_hits >= 1
