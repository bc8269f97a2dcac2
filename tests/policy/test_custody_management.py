"""CUSTODY_MANAGEMENT (羁押管理, 换押) opens no read channel beyond custody in the case.

Thinking as an attacker with a public_security client: the new purpose must not read any
resource but ``coercive_measure``, nor a case the agency does not handle, nor outside the
stages of 换押, nor a non-custodial measure, nor any field beyond the 换押证's. The oracle is
written here from the purpose's definition, independently of the engine; every agency,
resource, stage and handling combination is checked (the space is small enough to exhaust).
"""

from __future__ import annotations

from itertools import product

from gateway.policy import PolicyEngine
from gateway.policy.decision import SubjectRecords
from gateway.standard import Standard
from tests.policy.conftest import person, request, shipped, shipped_engine, standard

__all__ = ["shipped", "shipped_engine", "standard"]  # the fixtures used here

PURPOSE = "CUSTODY_MANAGEMENT"
STAGES = {"PROSECUTION_REVIEW", "TRIAL"}
FIELDS = {"measure_id", "case_id", "person_id", "measure_type", "decided_by", "start_date",
          "end_date", "custody_place"}  # fmt: skip
CUSTODIAL = {"DETENTION", "ARREST"}  # 刑事拘留、逮捕: the measures a 看守所 holds someone under


def _oracle(kind: str, resource: str, handles: bool, stage: str) -> bool:
    return (
        kind == "public_security" and resource == "coercive_measure" and handles and stage in STAGES
    )


def test_the_purpose_reads_only_custody_records_of_a_handled_case_in_its_stages(
    standard: Standard, shipped_engine: PolicyEngine
) -> None:
    stages = [code for code in standard.code_table("case_stage").codes]
    allowed = 0
    for agency, resource, stage, handles in product(
        standard.agencies, standard.resources, stages, (True, False)
    ):
        handling = (agency.code,) if handles else ("GA640302", "JC640302")
        if agency.code in handling and not handles:
            continue
        access = request(agency.code, resource.name, PURPOSE, handling=handling, stage=stage)
        decision = shipped_engine.decide(access)
        expected = _oracle(agency.kind, resource.name, handles, stage)
        assert decision.allowed is expected, (agency.code, resource.name, stage, handles)
        if decision.allowed:
            allowed += 1
            assert set(decision.permitted_fields) <= FIELDS
    assert allowed == 2 * 3  # three police agencies, two stages: the oracle is not vacuous


def test_no_case_no_read(shipped_engine: PolicyEngine) -> None:
    access = request("GA640104", "coercive_measure", PURPOSE, case=None)
    assert not shipped_engine.decide(access).allowed


def _suspect(sealed: bool = False) -> SubjectRecords:
    subjects = SubjectRecords()
    subjects.add("person", "person_id", [person("P1", "C1", role="SUSPECT",
                                                juvenile_record_sealed=sealed)])  # fmt: skip
    return subjects


def test_only_custodial_measures_are_released(shipped_engine: PolicyEngine) -> None:
    access = request("GA640104", "coercive_measure", PURPOSE, stage="TRIAL")
    decision = shipped_engine.decide(access)
    assert decision.allowed
    for measure_type in ("SUMMONS", "BAIL", "RESIDENTIAL_SURVEILLANCE",
                         "DESIGNATED_RESIDENTIAL_SURVEILLANCE", "DETENTION", "ARREST"):  # fmt: skip
        record = {
            "measure_id": "M1", "case_id": "C1", "person_id": "P1", "measure_type": measure_type,
            "decided_by": "GA640104", "start_date": "2024-01-02", "end_date": None,
            "custody_place": "银川市看守所" if measure_type in CUSTODIAL else None,
        }  # fmt: skip
        verdict = shipped_engine.filter_record(decision, access, record, _suspect())
        assert verdict.released is (measure_type in CUSTODIAL), measure_type
        if verdict.released:
            assert set(verdict.record) <= FIELDS
    # A sealed juvenile's custody record is not released for this purpose (刑事诉讼法 第286条:
    # CUSTODY_MANAGEMENT is not in the judicial case-handling exception), and is concealed.
    sealed = shipped_engine.filter_record(decision, access, record, _suspect(sealed=True))
    assert not sealed.released
    assert sealed.conceal
