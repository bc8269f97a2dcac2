"""Protection follows the subject (issue 11): a person's or a case's negative-list items act on
every record that refers to them, the bound case and filters included.

Small hand-written policies pin each rule of gateway/policy/screen.py and records.py; the shipped
policy is checked on the cases the issue reported (a sealed juvenile's judgment, a protected
witness's name on a judgment, concealed and ordinary decisions giving the same lists).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.policy import CaseContext, Outcome, PolicyEngine
from gateway.policy.decision import SubjectRecords
from gateway.standard import Standard
from tests.policy.conftest import PolicyWriter, engine_for, item, load, perm, person, request

SEALED = "nl.sealed"
SEALED_AT_TRIAL = "nl.sealed.trial"
SECRET_CASE = "nl.secret-case"


def _sealed_item(**exception: Any) -> dict[str, Any]:
    """A person's sealed-record item, lifted for the court's TRIAL (or by ``exception``)."""
    lift = {
        "id": SEALED_AT_TRIAL,
        "condition": 'request.purpose == "TRIAL"',
        "legal_basis": "刑事诉讼法 第286条第2款",
        **exception,
    }
    return item(SEALED, condition="record.juvenile_record_sealed", conceal=True, exceptions=[lift])


def _secret_case_item() -> dict[str, Any]:
    lift = {
        "id": "nl.secret-case.oversight",
        "condition": 'request.purpose == "OVERSIGHT"',
        "legal_basis": "测试依据",
    }
    return item(
        SECRET_CASE,
        resource="case",
        condition='record.secrecy_mark != "NONE"',
        conceal=True,
        exceptions=[lift],
    )


def _court(resource: str) -> list[dict[str, Any]]:
    """The court reads ``resource`` for TRIAL (exempt) and COMMUTATION_PAROLE (not exempt)."""
    return [
        perm(f"trial.{resource}", resource=resource),
        perm(f"cp.{resource}", resource=resource, purposes=["COMMUTATION_PAROLE"]),
    ]


def _known(*persons: dict[str, Any]) -> SubjectRecords:
    subjects = SubjectRecords()
    subjects.add("person", "person_id", list(persons))
    return subjects


def _judgment(defendant: str = "P1", case_id: str = "C1", **fields: Any) -> dict[str, Any]:
    return {
        "judgment_id": f"J-{defendant}",
        "case_id": case_id,
        "defendant_id": defendant,
        "defendant_name": "张三",
        "verdict": "GUILTY",
        "summary": "略",
        **fields,
    }


# -- a person's withhold_record item conceals the records about that person ----------------


@pytest.mark.parametrize(
    ("resource", "id_field", "reference", "sealed", "other"),
    [
        ("judgment", "judgment_id", "defendant_id", "P1", "P2"),
        ("coercive_measure", "measure_id", "person_id", "P1", "P2"),
        # A list reference: one protected person among several conceals the whole record.
        ("indictment", "indictment_id", "defendant_ids", ["P2", "P1"], ["P2", "P3"]),
    ],
)
def test_a_persons_withhold_record_item_conceals_records_that_refer_to_the_person(
    standard: Standard,
    write_policies: PolicyWriter,
    resource: str,
    id_field: str,
    reference: str,
    sealed: object,
    other: object,
) -> None:
    engine = engine_for(standard, write_policies, _court(resource), [_sealed_item()])
    subjects = _known(
        person("P1", juvenile_record_sealed=True), person("P2"), person("P3", role="WITNESS")
    )
    about_sealed = {id_field: "R1", "case_id": "C1", reference: sealed}
    about_other = {id_field: "R2", "case_id": "C1", reference: other}

    not_exempt = request(resource=resource, purpose="COMMUTATION_PAROLE")
    decision = engine.decide(not_exempt)
    assert decision.allowed
    assert decision.subject_resources == {"person"}
    hidden = engine.filter_record(decision, not_exempt, about_sealed, subjects)
    assert not hidden.released
    assert hidden.conceal  # 404 like a record that is not there
    assert hidden.record == {}
    assert hidden.rule_ids == (SEALED,)
    assert f"(person {reference})" in hidden.reason
    shown = engine.filter_record(decision, not_exempt, about_other, subjects)
    assert shown.released
    assert shown.record[reference] == other

    # The same exception as on the person itself: lifted for the court's trial.
    exempt = request(resource=resource, purpose="TRIAL")
    trial = engine.decide(exempt)
    lifted = engine.filter_record(trial, exempt, about_sealed, subjects)
    assert lifted.released
    assert lifted.record[reference] == sealed
    # The person resource itself behaves the same way (the rule the subject's records follow).
    own = engine_for(
        standard, write_policies, [perm("p", purposes=["COMMUTATION_PAROLE"])], [_sealed_item()]
    )
    own_req = request(purpose="COMMUTATION_PAROLE")
    own_verdict = own.filter_record(
        own.decide(own_req), own_req, person("P1", juvenile_record_sealed=True)
    )
    assert (own_verdict.released, own_verdict.conceal) == (False, True)


def test_a_record_level_exception_is_evaluated_on_the_subject(
    standard: Standard, write_policies: PolicyWriter
) -> None:
    # The exception reads the subject's record (not the judgment): a sealed defendant who is
    # recorded as a witness is lifted, and the record names the exception that lifted it.
    engine = engine_for(
        standard,
        write_policies,
        _court("judgment"),
        [_sealed_item(condition='record.role == "WITNESS"')],
    )
    req = request(resource="judgment", purpose="COMMUTATION_PAROLE")
    decision = engine.decide(req)
    subjects = _known(
        person("P1", juvenile_record_sealed=True, role="WITNESS"),
        person("P2", juvenile_record_sealed=True, role="DEFENDANT"),
    )
    lifted = engine.filter_record(decision, req, _judgment("P1"), subjects)
    assert lifted.released
    assert SEALED_AT_TRIAL in lifted.rule_ids
    kept = engine.filter_record(decision, req, _judgment("P2"), subjects)
    assert not kept.released
    assert kept.conceal
    assert kept.rule_ids == (SEALED,)


def test_a_request_level_exception_lifting_a_subjects_item_is_named_on_the_record(
    standard: Standard, write_policies: PolicyWriter
) -> None:
    engine = engine_for(standard, write_policies, _court("judgment"), [_sealed_item()])
    req = request(resource="judgment", purpose="TRIAL")
    decision = engine.decide(req)
    verdict = engine.filter_record(
        decision, req, _judgment("P1"), _known(person("P1", juvenile_record_sealed=True))
    )
    assert verdict.released
    assert SEALED_AT_TRIAL in verdict.rule_ids


# -- a case's withhold_record item conceals what belongs to the case ------------------------


def test_a_cases_withhold_record_item_conceals_the_persons_of_that_case(
    standard: Standard, write_policies: PolicyWriter
) -> None:
    engine = engine_for(
        standard,
        write_policies,
        [
            perm(
                "zf.person",
                grantee={"kind": "committee"},
                purposes=["STATISTICS", "OVERSIGHT"],
                fields=["person_id", "case_id", "sex"],
            )
        ],
        [_secret_case_item()],
    )
    subjects = SubjectRecords()
    subjects.add(
        "case",
        "case_id",
        [
            {"case_id": "C-SECRET", "secrecy_mark": "SECRET"},
            {"case_id": "C-OPEN", "secrecy_mark": "NONE"},
        ],
    )
    req = request("ZF640000", purpose="STATISTICS", case=None)
    decision = engine.decide(req)
    assert decision.allowed
    assert decision.subject_resources == {"case"}
    secret = engine.filter_record(decision, req, person("P1", "C-SECRET", sex="1"), subjects)
    assert (secret.released, secret.conceal) == (False, True)
    assert secret.rule_ids == (SECRET_CASE,)
    assert "(case case_id)" in secret.reason
    open_case = engine.filter_record(decision, req, person("P2", "C-OPEN", sex="2"), subjects)
    assert open_case.record == {"person_id": "P2", "case_id": "C-OPEN", "sex": "2"}
    # A case nobody could check: fail closed.
    unknown = engine.filter_record(decision, req, person("P3", "C-GONE"), subjects)
    assert (unknown.released, unknown.conceal) == (False, True)
    assert "could not be checked" in unknown.reason

    # Lifted for the exempt purpose: then no case record is needed at all.
    oversight = request("ZF640000", purpose="OVERSIGHT", case=None)
    lifted = engine.decide(oversight)
    assert lifted.subject_resources == frozenset()
    assert engine.filter_record(lifted, oversight, person("P1", "C-SECRET"), subjects).released
    assert engine.filter_record(lifted, oversight, person("P3", "C-GONE"), None).released


def test_the_bound_case_is_served_from_the_request(
    standard: Standard, write_policies: PolicyWriter
) -> None:
    # Records of the bound case refer to the case the request names: CaseContext.as_record
    # serves it, the exchange need not resolve it again.
    engine = engine_for(standard, write_policies, [perm("trial.person")], [_secret_case_item()])
    ordinary = request()
    decision = engine.decide(ordinary)
    assert decision.subject_resources == {"case"}
    assert engine.filter_record(decision, ordinary, person("P1"), None).released
    secret = request(secrecy="SECRET")
    decision = engine.decide(secret)
    verdict = engine.filter_record(decision, secret, person("P1"), None)
    assert (verdict.released, verdict.conceal) == (False, True)
    assert verdict.rule_ids == (SECRET_CASE,)
    # The request's own case wins over a record of the same id handed in as a subject.
    misleading = SubjectRecords()
    misleading.add("case", "case_id", [{"case_id": "C1", "secrecy_mark": "NONE"}])
    assert not engine.filter_record(decision, secret, person("P1"), misleading).released


def test_case_context_as_record() -> None:
    context = CaseContext(
        case_id="C1",
        police_case_number="A6401040000002021030042",
        court_case_number=None,
        handling_agencies=frozenset({"JC640104", "FY640104"}),
        stage="TRIAL",
        secrecy_mark="NONE",
    )
    assert context.as_record() == {
        "case_id": "C1",
        "police_case_number": "A6401040000002021030042",
        "court_case_number": None,
        "handling_agencies": ["FY640104", "JC640104"],
        "stage": "TRIAL",
        "secrecy_mark": "NONE",
    }
    whole = {"case_id": "C1", "secrecy_mark": "NONE", "case_category": "050200"}
    assert replace(context, record=whole).as_record() is whole


def test_a_case_item_reads_the_whole_case_record_when_the_request_has_it(
    standard: Standard, write_policies: PolicyWriter
) -> None:
    # A condition on a case field that only the whole record has: evaluated on it when the
    # exchange passed it; without it the record is withheld (CEL cannot read the field).
    engine = engine_for(
        standard,
        write_policies,
        [perm("trial.person")],
        [
            item(
                "nl.theft",
                resource="case",
                condition='record.case_category == "050200"',
                conceal=True,
            )
        ],
    )
    base = request()
    assert base.case is not None
    theft = replace(
        base, case=replace(base.case, record={"case_id": "C1", "case_category": "050200"})
    )
    other = replace(
        base, case=replace(base.case, record={"case_id": "C1", "case_category": "010100"})
    )
    hidden = engine.filter_record(engine.decide(theft), theft, person("P1"))
    assert (hidden.released, hidden.rule_ids) == (False, ("nl.theft",))
    assert engine.filter_record(engine.decide(other), other, person("P1")).released
    partial = engine.filter_record(engine.decide(base), base, person("P1"))
    assert (partial.released, partial.conceal) == (False, True)  # fail closed


# -- field items act through mirrors, and only there -----------------------------------------


def _mirror_engine(standard: Standard, write_policies: PolicyWriter) -> PolicyEngine:
    return engine_for(
        standard,
        write_policies,
        [
            perm("trial.judgment", resource="judgment"),
            perm("trial.measure", resource="coercive_measure"),
        ],
        [
            item("nl.wit", action="withhold_fields", fields=["name"],
                 condition="record.protected_witness"),
            item("nl.minor", action="mask_fields", fields=["name"], condition="record.is_minor",
                 mask={"kind": "keep", "first": 1, "last": 0}),
            item("nl.idno", action="withhold_fields", fields=["id_number"]),
        ],
    )  # fmt: skip


def test_a_persons_field_items_act_on_the_mirroring_field(
    standard: Standard, write_policies: PolicyWriter
) -> None:
    engine = _mirror_engine(standard, write_policies)
    req = request(resource="judgment")
    decision = engine.decide(req)
    assert decision.subject_resources == {"person"}
    # id_number has no mirror on a judgment: that item decides nothing here.
    assert "nl.idno" not in decision.rule_ids
    assert decision.withheld_fields == frozenset()
    subjects = _known(
        person("P1", protected_witness=True),
        person("P2", is_minor=True),
        person("P3"),
        person("P4", protected_witness=True, is_minor=True),
    )
    witness = engine.filter_record(decision, req, _judgment("P1"), subjects)
    assert witness.released
    assert "defendant_name" not in witness.record
    assert "defendant_name" in witness.withheld_fields
    assert "nl.wit" in witness.rule_ids
    # Only the mirroring field: the rest of the judgment is released as it is.
    assert witness.record == {k: v for k, v in _judgment("P1").items() if k != "defendant_name"}

    minor = engine.filter_record(decision, req, _judgment("P2"), subjects)
    assert minor.record["defendant_name"] == "张*"
    assert minor.masked_fields == {"defendant_name"}
    assert "nl.minor" in minor.rule_ids
    assert minor.record["summary"] == "略"

    ordinary = engine.filter_record(decision, req, _judgment("P3"), subjects)
    assert ordinary.record["defendant_name"] == "张三"
    assert ordinary.masked_fields == frozenset()
    assert not {"nl.wit", "nl.minor"} & set(ordinary.rule_ids)
    # Withheld beats masked.
    both = engine.filter_record(decision, req, _judgment("P4"), subjects)
    assert "defendant_name" not in both.record
    assert both.masked_fields == frozenset()


def test_unconditional_subject_field_items_decide_at_request_level(
    standard: Standard, write_policies: PolicyWriter
) -> None:
    engine = engine_for(
        standard,
        write_policies,
        [
            perm("trial.judgment", resource="judgment"),
            perm("trial.measure", resource="coercive_measure"),
        ],
        [
            item("nl.name", action="withhold_fields", fields=["name"]),
            item("nl.idno", action="mask_fields", fields=["id_number"], mask={"kind": "redact"}),
        ],
    )  # fmt: skip
    req = request(resource="judgment")
    decision = engine.decide(req)
    assert "defendant_name" in decision.withheld_fields
    assert "defendant_name" not in decision.permitted_fields
    assert "defendant_name" not in decision.clear_fields
    assert "nl.name" in decision.rule_ids
    assert "nl.idno" not in decision.rule_ids  # no mirror of id_number on a judgment
    # Nothing is left to decide per record: no person record needed.
    assert decision.subject_resources == frozenset()
    verdict = engine.filter_record(decision, req, _judgment("P1"), None)
    assert verdict.released
    assert "defendant_name" not in verdict.record
    # A coercive measure mirrors nothing of the person: the name item does not reach it.
    measure = engine.decide(request(resource="coercive_measure"))
    assert measure.withheld_fields == frozenset()
    assert "nl.name" not in measure.rule_ids


def test_a_subjects_deny_request_items_do_not_travel(
    standard: Standard, write_policies: PolicyWriter
) -> None:
    perms = [perm("trial.person"), perm("trial.judgment", resource="judgment")]
    for conceal, outcome in ((True, Outcome.NOT_FOUND), (False, Outcome.DENY)):
        engine = engine_for(
            standard,
            write_policies,
            perms,
            [item("nl.no-persons", action="deny_request", conceal=conceal)],
        )
        assert engine.decide(request()).outcome is outcome
        judgment = request(resource="judgment")
        decision = engine.decide(judgment)
        assert decision.allowed
        assert "nl.no-persons" not in decision.rule_ids
        assert decision.subject_resources == frozenset()
        assert engine.filter_record(decision, judgment, _judgment("P1"), None).released
        # …nor do they stop the subject's other items from travelling.
        guarded = engine_for(
            standard,
            write_policies,
            [*perms, perm("cp.judgment", resource="judgment", purposes=["COMMUTATION_PAROLE"])],
            [item("nl.no-persons", action="deny_request", conceal=conceal), _sealed_item()],
        )
        cp = request(resource="judgment", purpose="COMMUTATION_PAROLE")
        verdict = guarded.filter_record(
            guarded.decide(cp),
            cp,
            _judgment("P1"),
            _known(person("P1", juvenile_record_sealed=True)),
        )
        assert (verdict.released, verdict.rule_ids) == (False, (SEALED,))


# -- subject records: needed ones must be there ----------------------------------------------


def test_a_missing_subject_conceals_only_when_the_decision_needs_it(
    standard: Standard, write_policies: PolicyWriter
) -> None:
    req = request(resource="judgment", purpose="COMMUTATION_PAROLE")
    plain = engine_for(standard, write_policies, _court("judgment"))
    decision = plain.decide(req)
    assert decision.subject_resources == frozenset()
    assert plain.filter_record(decision, req, _judgment("P-UNKNOWN"), None).released

    guarded = engine_for(standard, write_policies, _court("judgment"), [_sealed_item()])
    decision = guarded.decide(req)
    assert decision.subject_resources == {"person"}
    known = _known(person("P1"))
    assert guarded.filter_record(decision, req, _judgment("P1"), known).released
    for subjects in (
        None,
        SubjectRecords(),
        known,  # holds P1, not the P9 the record refers to
        SubjectRecords(records={("person", "P9"): None}),  # the owner has no such person
        SubjectRecords(records={("case", "P9"): dict(person("P9"))}),  # another resource's id
    ):
        verdict = guarded.filter_record(decision, req, _judgment("P9"), subjects)
        assert not verdict.released
        assert verdict.conceal
        assert verdict.rule_ids == ()
        assert "could not be checked" in verdict.reason
    # A list reference: every listed person is needed.
    indictments = engine_for(standard, write_policies, _court("indictment"), [_sealed_item()])
    ind_req = request(resource="indictment", purpose="COMMUTATION_PAROLE")
    ind = indictments.decide(ind_req)
    record = {"indictment_id": "I1", "case_id": "C1", "defendant_ids": ["P1", "P9"]}
    assert not indictments.filter_record(ind, ind_req, record, known).released
    both = _known(person("P1"), person("P9"))
    assert indictments.filter_record(ind, ind_req, record, both).released


def test_an_unconditional_subject_item_needs_no_subject_record(
    standard: Standard, write_policies: PolicyWriter
) -> None:
    engine = engine_for(
        standard,
        write_policies,
        _court("judgment"),
        [item("nl.all-persons", conceal=True)],
    )
    req = request(resource="judgment")
    decision = engine.decide(req)
    assert decision.allowed
    assert decision.subject_resources == frozenset()
    verdict = engine.filter_record(decision, req, _judgment("P1"), None)
    assert (verdict.released, verdict.conceal) == (False, True)
    assert verdict.rule_ids == ("nl.all-persons",)


# -- a filter is a read -------------------------------------------------------------------------


def _filter_engine(standard: Standard, write_policies: PolicyWriter) -> PolicyEngine:
    return engine_for(
        standard,
        write_policies,
        [perm("trial.person", fields=["person_id", "case_id", "name", "id_number", "sex", "role"])],
        [
            item("nl.wit", action="withhold_fields", fields=["name"],
                 condition="record.protected_witness"),
            item("nl.minor-id", action="mask_fields", fields=["id_number"],
                 condition="record.is_minor", mask={"kind": "keep", "first": 6, "last": 4}),
            item("nl.sex", action="mask_fields", fields=["sex"], mask={"kind": "redact"}),
        ],
    )  # fmt: skip


def test_clear_and_masked_fields_at_request_level(
    standard: Standard, write_policies: PolicyWriter
) -> None:
    engine = _filter_engine(standard, write_policies)
    narrow = engine.decide(request(fields={"person_id"}))
    # In the clear: granted, not withheld, not masked for every record; requested or not.
    # Record-level items (nl.wit, nl.minor-id) are decided per record, not here.
    assert narrow.clear_fields == {"person_id", "case_id", "name", "id_number", "role"}
    assert narrow.masked_fields == frozenset()  # sex is masked, but not requested
    wide = engine.decide(request(fields={"person_id", "sex", "phone"}))
    assert wide.masked_fields == {"sex"}
    assert wide.withheld_fields == {"phone"}
    assert wide.clear_fields == narrow.clear_fields


def test_a_filter_on_a_field_not_released_in_the_clear_is_no_match(
    standard: Standard, write_policies: PolicyWriter
) -> None:
    engine = _filter_engine(standard, write_policies)
    ordinary = person("P1", name="甲", id_number="11010519491231002X", sex="1", role="WITNESS")
    witness = {**ordinary, "person_id": "P2", "protected_witness": True}
    minor = {**ordinary, "person_id": "P3", "is_minor": True}

    def verdict(record: dict[str, Any], filters: dict[str, str]) -> Any:
        req = request(fields={"person_id"}, filters=filters)
        return engine.filter_record(engine.decide(req), req, record)

    # The filtered field is not requested but would be in the clear: a match, fields as asked.
    by_name = verdict(ordinary, {"name": "甲"})
    assert by_name.record == {"person_id": "P1"}
    # A record on which the filtered field is withheld or masked: concealed, like no match.
    for record, filters, name in (
        (witness, {"name": "甲"}, "name"),
        (minor, {"id_number": "11010519491231002X"}, "id_number"),
        (ordinary, {"sex": "1"}, "sex"),  # masked for every record
        (ordinary, {"phone": "13800000000"}, "phone"),  # not granted at all
    ):
        hidden = verdict(record, filters)
        assert not hidden.released, filters
        assert hidden.conceal
        assert f"the filter on {name}" in hidden.reason
    # The record-level items only touch the records they apply to.
    assert verdict(minor, {"name": "甲"}).released
    assert verdict(witness, {"id_number": "11010519491231002X"}).released
    assert verdict(ordinary, {"id_number": "11010519491231002X"}).released
    assert verdict(ordinary, {"role": "WITNESS"}).released


def test_a_filter_on_a_mirroring_field_follows_the_subject(
    standard: Standard, write_policies: PolicyWriter
) -> None:
    engine = _mirror_engine(standard, write_policies)
    subjects = _known(
        person("P1", protected_witness=True), person("P2", is_minor=True), person("P3")
    )
    req = request(resource="judgment", fields={"judgment_id"}, filters={"defendant_name": "张三"})
    decision = engine.decide(req)
    outcomes = {
        p: engine.filter_record(decision, req, _judgment(p), subjects) for p in ("P1", "P2", "P3")
    }
    assert [outcomes[p].released for p in ("P1", "P2", "P3")] == [False, False, True]
    assert outcomes["P1"].conceal
    assert outcomes["P2"].conceal
    assert outcomes["P3"].record == {"judgment_id": "J-P3"}


# -- concealed requests keep the request-level lists ---------------------------------------


@pytest.mark.parametrize(
    ("agency", "resource", "purpose", "fields"),
    [
        ("JC640104", "person", "EXECUTION_SUPERVISION", None),  # id_number etc. masked
        ("ZF640000", "judgment", "OVERSIGHT", {"judgment_id", "defendant_name", "summary"}),
        ("JY640001", "person", "SENTENCE_EXECUTION", {"person_id", "phone", "name"}),
    ],
)
def test_a_concealed_request_carries_the_lists_of_an_ordinary_one(
    shipped_engine: PolicyEngine,
    agency: str,
    resource: str,
    purpose: str,
    fields: set[str] | None,
) -> None:
    approval = "宁政法督〔2025〕1号" if agency == "ZF640000" else None  # 挂牌督办 needs one
    ordinary = shipped_engine.decide(
        request(agency, resource, purpose, fields=fields, approval_reference=approval)
    )
    secret_req = request(
        agency, resource, purpose, fields=fields, secrecy="SECRET", approval_reference=approval
    )
    secret = shipped_engine.decide(secret_req)
    assert ordinary.outcome is Outcome.ALLOW
    assert secret.outcome is Outcome.NOT_FOUND
    assert secret.rule_ids == ("nl.state-secret.case-request",)
    assert ordinary.withheld_fields or ordinary.masked_fields  # the lists say something
    assert secret.withheld_fields == ordinary.withheld_fields
    assert secret.masked_fields == ordinary.masked_fields
    assert secret.permitted_fields == ordinary.permitted_fields
    assert secret.clear_fields == ordinary.clear_fields
    # …and nothing is released under it.
    verdict = shipped_engine.filter_record(secret, secret_req, person("P1", name="甲"))
    assert (verdict.released, verdict.conceal) == (False, True)


def test_a_concealing_items_cel_failure_keeps_the_lists(
    standard: Standard, write_policies: PolicyWriter
) -> None:
    engine = engine_for(
        standard,
        write_policies,
        [perm("trial.person", fields=["person_id", "name"])],
        [
            item(
                "nl.staged",
                action="deny_request",
                conceal=True,
                condition='request.case_stage.startsWith("SEALED")',
            )
        ],
    )
    ordinary = engine.decide(request(stage="TRIAL", fields={"person_id", "name", "phone"}))
    concealed = engine.decide(request(stage="SEALED_X", fields={"person_id", "name", "phone"}))
    failed = engine.decide(request(stage=None, fields={"person_id", "name", "phone"}))
    assert ordinary.outcome is Outcome.ALLOW
    assert concealed.outcome is Outcome.NOT_FOUND
    assert concealed.withheld_fields == ordinary.withheld_fields == {"phone"}
    assert failed.outcome is Outcome.NOT_FOUND  # fails closed, and concealed: holds today
    assert failed.withheld_fields == ordinary.withheld_fields


# -- the shipped policy -----------------------------------------------------------------------


def test_shipped_a_sealed_juveniles_judgment_is_concealed_outside_the_286_exceptions(
    shipped_engine: PolicyEngine,
) -> None:
    sealed = person("P1", is_minor=True, juvenile_record_sealed=True, name="甲", role="DEFENDANT")
    subjects = _known(sealed)
    judgment = _judgment("P1", defendant_name="甲")
    # 政法委's 挂牌督办 is no 第286条 exception: the judgment is not there, as the person is not.
    supervising = request(
        "ZF640000", "judgment", "OVERSIGHT", handling=(), approval_reference="宁政法督〔2025〕1号"
    )
    decision = shipped_engine.decide(supervising)
    assert decision.allowed, decision.reason
    verdict = shipped_engine.filter_record(decision, supervising, judgment, subjects)
    assert (verdict.released, verdict.conceal) == (False, True)
    assert verdict.rule_ids == ("nl.juvenile.sealed-record",)
    # Judicial case handling and the execution agencies' queries under state rules (prison,
    # 社区矫正) are the exceptions: released, and the exception that allowed it is named.
    for agency, purpose, exception in (
        ("FY640104", "TRIAL", "nl.juvenile.sealed-record.judicial-case-handling"),
        ("JY640001", "SENTENCE_EXECUTION", "nl.juvenile.sealed-record.execution-by-state-rules"),
        ("SF640104", "COMMUNITY_CORRECTION", "nl.juvenile.sealed-record.execution-by-state-rules"),
    ):
        req = request(agency, "judgment", purpose)
        released = shipped_engine.filter_record(shipped_engine.decide(req), req, judgment, subjects)
        assert released.released, (agency, released.reason)
        assert released.record["defendant_id"] == "P1"
        assert exception in released.rule_ids


def test_shipped_a_protected_defendants_name_is_withheld_on_the_judgment(
    shipped_engine: PolicyEngine,
) -> None:
    req = request("JY640001", "judgment", "SENTENCE_EXECUTION")
    decision = shipped_engine.decide(req)
    subjects = _known(person("P1", protected_witness=True), person("P2"))
    protected = shipped_engine.filter_record(decision, req, _judgment("P1"), subjects)
    assert protected.released
    assert "defendant_name" not in protected.record
    assert "nl.witness.protected-identity" in protected.rule_ids
    ordinary = shipped_engine.filter_record(decision, req, _judgment("P2"), subjects)
    assert ordinary.record["defendant_name"] == "张三"


# -- property: released or concealed, against an independent predicate ------------------------

_PURPOSES = ("TRIAL", "COMMUTATION_PAROLE")


@pytest.fixture(scope="module")
def property_engine(standard: Standard, tmp_path_factory: pytest.TempPathFactory) -> PolicyEngine:
    """One engine for every example (hypothesis runs the test body many times)."""
    root = tmp_path_factory.mktemp("subject-policies")
    permissions = [
        perm("trial.j", resource="judgment", case_binding=False),
        perm("cp.j", resource="judgment", purposes=["COMMUTATION_PAROLE"], case_binding=False),
    ]
    negative = [
        _sealed_item(),
        _secret_case_item(),
        item("nl.wit", action="withhold_fields", fields=["name"],
             condition="record.protected_witness"),
        item("nl.minor", action="mask_fields", fields=["name"], condition="record.is_minor",
             mask={"kind": "redact"}),
    ]  # fmt: skip
    for folder, key, rules in (
        ("permissions", "permissions", permissions),
        ("negative_list", "negative_list", negative),
    ):
        (root / folder).mkdir()
        (root / folder / "rules.yaml").write_text(
            yaml.safe_dump({key: rules}, allow_unicode=True), encoding="utf-8"
        )
    return PolicyEngine(load(root, standard))


def _expected(
    purpose: str,
    flags: dict[str, bool],
    secret: bool,
    person_known: bool,
    case_known: bool,
    filter_name: bool,
) -> tuple[bool, str | None]:
    """Independent reading of the policy above: (released, defendant_name as released)."""
    if not case_known or secret:  # the secret-case item is never lifted for these purposes
        return False, None
    if not person_known:
        return False, None
    if flags["juvenile_record_sealed"] and purpose != "TRIAL":
        return False, None
    hidden = flags["protected_witness"]
    masked = flags["is_minor"] and not hidden
    if filter_name and (hidden or masked):
        return False, None  # a filter is a read
    if hidden:
        return True, None
    return True, "***" if masked else "张三"


@settings(max_examples=200, deadline=None)
@given(
    purpose=st.sampled_from(_PURPOSES),
    flags=st.fixed_dictionaries(
        {
            "juvenile_record_sealed": st.booleans(),
            "protected_witness": st.booleans(),
            "is_minor": st.booleans(),
        }
    ),
    secret=st.booleans(),
    person_known=st.booleans(),
    case_known=st.booleans(),
    filter_name=st.booleans(),
)
def test_release_matches_an_independent_predicate(
    property_engine: PolicyEngine,
    purpose: str,
    flags: dict[str, bool],
    secret: bool,
    person_known: bool,
    case_known: bool,
    filter_name: bool,
) -> None:
    engine = property_engine
    subjects = SubjectRecords()
    if person_known:
        subjects.add("person", "person_id", [person("P1", "C7", **flags)])
    if case_known:
        mark = "SECRET" if secret else "NONE"
        subjects.add("case", "case_id", [{"case_id": "C7", "secrecy_mark": mark}])
    req = request(
        resource="judgment",
        purpose=purpose,
        case=None,
        filters={"defendant_name": "张三"} if filter_name else None,
    )
    decision = engine.decide(req)
    verdict = engine.filter_record(decision, req, _judgment("P1", "C7"), subjects)
    released, name = _expected(purpose, flags, secret, person_known, case_known, filter_name)
    assert verdict.released is released
    if released:
        assert verdict.record.get("defendant_name") == name
        assert verdict.record["verdict"] == "GUILTY"
    else:
        assert verdict.conceal  # every refusal here reads like a record that is not there
        assert verdict.record == {}
