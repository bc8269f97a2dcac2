"""Shared fixtures for the unified-standard tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gateway.standard import Standard, load_standard

STANDARD_DIR = Path(__file__).resolve().parents[2] / "policies" / "standard"
SCHEMA_PATH = Path(__file__).resolve().parents[2] / "policies" / "schema" / "standard.schema.json"


@pytest.fixture(scope="session")
def standard_dir() -> Path:
    """The shipped ``policies/standard`` directory."""
    return STANDARD_DIR


@pytest.fixture(scope="session")
def schema_path() -> Path:
    """The shipped ``policies/schema/standard.schema.json``."""
    return SCHEMA_PATH


@pytest.fixture(scope="session")
def standard() -> Standard:
    return load_standard(STANDARD_DIR)


@pytest.fixture
def standard_copy(tmp_path: Path) -> Path:
    """A writable copy of the shipped standard directory."""
    target = tmp_path / "standard"
    shutil.copytree(STANDARD_DIR, target)
    return target


def _valid_records() -> dict[str, dict[str, object]]:
    """One valid record per resource type, with real-format values."""
    return {
        "case": {
            "case_id": "C-2021-0001",
            "police_case_number": "A6401040000002021030042",
            "case_name": "张某盗窃案",
            "case_category": "050200",
            "filing_date": "2021-03-02",
            "division": "640104",
            "stage": "TRIAL",
            "handling_agencies": ["GA640104", "JC640104", "FY640104"],
            "court_case_number": "(2021)宁0104刑初123号",
            "secrecy_mark": "NONE",
            "brief": "2021年3月1日，张某在兴庆区某小区盗窃电动自行车一辆。",
            "has_sealed_juvenile": False,
            "closed_trial": False,
            "work_secret": False,
        },
        "person": {
            "person_id": "P-0001",
            "case_id": "C-2021-0001",
            "name": "张某",
            "sex": "1",
            "ethnicity": "03",
            "id_number": "11010519491231002X",
            "birth_date": "1949-12-31",
            "domicile_division": "620102",
            "domicile_address": "甘肃省兰州市城关区某街道",
            "address": "银川市兴庆区某街道",
            "residence_division": "640104",
            "phone": "13800000000",
            "health_status": None,
            "role": "DEFENDANT",
            "is_minor": False,
            "juvenile_record_sealed": False,
            "protected_witness": False,
            "sexual_offence_victim": False,
        },
        "coercive_measure": {
            "measure_id": "M-1",
            "case_id": "C-2021-0001",
            "person_id": "P-0001",
            "measure_type": "DETENTION",
            "decided_by": "GA640104",
            "start_date": "2021-03-02",
            "end_date": None,
            "custody_place": "银川市看守所",
        },
        "arrest_review": {
            "review_id": "R-1",
            "case_id": "C-2021-0001",
            "person_id": "P-0001",
            "request_date": "2021-03-05",
            "decision": "APPROVED",
            "decision_date": "2021-03-11",
            "procuratorate": "JC640104",
            "reason": "有证据证明有犯罪事实，可能判处徒刑以上刑罚。",
        },
        "prosecution_transfer": {
            "transfer_id": "T-1",
            "case_id": "C-2021-0001",
            "person_ids": ["P-0001"],
            "transfer_date": "2021-05-01",
            "receiving_procuratorate": "JC640104",
            "charges": ["盗窃罪"],
            "review_outcome": "INDICTED",
            "outcome_date": "2021-06-01",
            "opinion": "犯罪嫌疑人张某涉嫌盗窃罪，建议提起公诉。",
        },
        "indictment": {
            "indictment_id": "I-1",
            "case_id": "C-2021-0001",
            "document_number": "宁银兴检刑诉〔2021〕123号",
            "defendant_ids": ["P-0001"],
            "charges": ["盗窃罪"],
            "indictment_date": "2021-06-01",
            "court": "FY640104",
        },
        "judgment": {
            "judgment_id": "J-1",
            "case_id": "C-2021-0001",
            "court_case_number": "（2021）宁0104刑初123号",
            "court": "FY640104",
            "defendant_id": "P-0001",
            "defendant_name": "张某",
            "verdict": "GUILTY",
            "penalty_type": "FIXED_TERM",
            "term_months": 18,
            "probation_months": 24,
            "judgment_date": "2021-07-15",
            "effective_date": "2021-07-26",
            "second_instance_basis": None,
            "executing_agency": "SF640104",
            "execution_notice_date": "2021-07-29",
            "summary": "被告人张某犯盗窃罪，判处有期徒刑一年六个月，缓刑二年。",
        },
        "sentence_execution": {
            "execution_id": "E-1",
            "case_id": "C-2021-0001",
            "person_id": "P-0001",
            "court_case_number": "(2021)宁0104刑初123号",
            "prison": "JY640001",
            "admission_date": "2021-08-01",
            "sentence_start": "2021-03-02",
            "sentence_end": "2022-09-01",
            "status": "IN_CUSTODY",
        },
        "commutation_parole": {
            "application_id": "A-1",
            "case_id": "C-2021-0001",
            "person_id": "P-0001",
            "kind": "COMMUTATION",
            "application_date": "2022-03-01",
            "reduction_months": 2,
            "court_case_number": "(2022)宁01刑更45号",
            "ruling": "APPROVED",
            "ruling_date": "2022-04-01",
        },
        "community_correction": {
            "correction_id": "CC-1",
            "case_id": "C-2021-0001",
            "person_id": "P-0001",
            "correction_type": "PROBATION",
            "start_date": "2021-08-01",
            "end_date": "2023-07-31",
            "supervising_office": "SF640104",
            "division": "640104",
            "status": "ACTIVE",
        },
        "technical_investigation": {
            "ti_id": "TI-1",
            "case_id": "C-2021-0001",
            "target_person_id": "P-0001",
            "measure_type": "COMMUNICATIONS_INTERCEPT",
            "approval_number": "银公技审〔2021〕7号",
            "approved_by": "GA640100",
            "approval_date": "2021-03-02",
            "start_date": "2021-03-03",
            "end_date": "2021-06-02",
            "extension_count": 0,
            "operative_identity": None,
            "technical_method": "通信数据调取",
            "material_summary": "略",
        },
    }


@pytest.fixture
def valid_records() -> dict[str, dict[str, object]]:
    """Fresh copies of one valid record per resource type (safe to mutate)."""
    return _valid_records()
