"""Standard-form record types, resource metadata and the sandbox id scheme.

Records are plain JSON-ready dicts (``TypedDict``) whose keys are exactly the field names of
``docs/standard-outline.md``. Dates are ISO ``YYYY-MM-DD`` strings; absent values are ``None``.

Id scheme (URL-safe ASCII, fixed width, so string order equals generation order):

* case: ``C`` + 8-digit case index, e.g. ``C00000042``;
* any other record: its resource prefix + the 8-digit case index + a 2-digit ordinal within the
  case, e.g. person ``P0000004201``, judgment ``JD0000004201``.

The case index can thus be decoded from any id (:func:`case_index_of`) without materialising
the dataset.
"""

from __future__ import annotations

from typing import Final, NamedTuple, TypedDict


class CaseRecord(TypedDict):
    """case 案件 (owner public_security)."""

    case_id: str
    police_case_number: str
    case_name: str
    case_category: str
    filing_date: str
    division: str
    stage: str
    handling_agencies: list[str]
    court_case_number: str | None
    secrecy_mark: str
    brief: str
    has_sealed_juvenile: bool
    closed_trial: bool
    work_secret: bool


class PersonRecord(TypedDict):
    """person 涉案人员 (owner public_security)."""

    person_id: str
    case_id: str
    name: str
    sex: str
    ethnicity: str
    id_number: str
    birth_date: str
    domicile_division: str
    domicile_address: str
    address: str
    residence_division: str
    phone: str
    health_status: str | None
    role: str
    is_minor: bool
    juvenile_record_sealed: bool
    protected_witness: bool
    sexual_offence_victim: bool


class CoerciveMeasureRecord(TypedDict):
    """coercive_measure 强制措施/羁押 (owner public_security)."""

    measure_id: str
    case_id: str
    person_id: str
    measure_type: str
    decided_by: str
    start_date: str
    end_date: str | None
    custody_place: str | None


class ArrestReviewRecord(TypedDict):
    """arrest_review 审查逮捕 (owner procuratorate). ``decision`` is None while pending."""

    review_id: str
    case_id: str
    person_id: str
    request_date: str
    decision: str | None
    decision_date: str | None
    procuratorate: str
    reason: str | None


class ProsecutionTransferRecord(TypedDict):
    """prosecution_transfer 移送审查起诉 (owner public_security)."""

    transfer_id: str
    case_id: str
    person_ids: list[str]
    transfer_date: str
    receiving_procuratorate: str
    charges: list[str]
    review_outcome: str | None
    outcome_date: str | None
    opinion: str


class IndictmentRecord(TypedDict):
    """indictment 起诉书 (owner procuratorate)."""

    indictment_id: str
    case_id: str
    document_number: str
    defendant_ids: list[str]
    charges: list[str]
    indictment_date: str
    court: str


class JudgmentRecord(TypedDict):
    """judgment 裁判文书 (owner court); one record per defendant, sharing the 案号."""

    judgment_id: str
    case_id: str
    court_case_number: str
    court: str
    defendant_id: str
    defendant_name: str
    verdict: str
    penalty_type: str
    term_months: int | None
    probation_months: int | None
    judgment_date: str
    effective_date: str | None
    second_instance_basis: str | None
    executing_agency: str | None
    execution_notice_date: str | None
    summary: str


class SentenceExecutionRecord(TypedDict):
    """sentence_execution 刑罚执行 (owner prison)."""

    execution_id: str
    case_id: str
    person_id: str
    court_case_number: str
    prison: str
    admission_date: str
    sentence_start: str
    sentence_end: str | None
    status: str


class CommutationParoleRecord(TypedDict):
    """commutation_parole 减刑假释 (owner prison); court_case_number is the 刑更 案号."""

    application_id: str
    case_id: str
    person_id: str
    kind: str
    application_date: str
    reduction_months: int | None
    court_case_number: str
    ruling: str
    ruling_date: str | None


class CommunityCorrectionRecord(TypedDict):
    """community_correction 社区矫正 (owner justice)."""

    correction_id: str
    case_id: str
    person_id: str
    correction_type: str
    start_date: str
    end_date: str
    supervising_office: str
    division: str
    status: str


class TechnicalInvestigationRecord(TypedDict):
    """technical_investigation 技术侦查措施 (owner public_security)."""

    ti_id: str
    case_id: str
    target_person_id: str
    measure_type: str
    approval_number: str
    approved_by: str
    approval_date: str
    start_date: str
    end_date: str
    extension_count: int
    operative_identity: str | None
    technical_method: str | None
    material_summary: str


class ResourceSpec(NamedTuple):
    """Static facts about one resource type of the outline."""

    owner: str  # agency kind
    id_field: str
    id_prefix: str
    filters: tuple[str, ...]  # the outline's `f` fields


RESOURCES: Final = {
    "case": ResourceSpec(
        "public_security", "case_id", "C", ("police_case_number", "court_case_number")
    ),
    "person": ResourceSpec("public_security", "person_id", "P", ("case_id", "id_number")),
    "coercive_measure": ResourceSpec(
        "public_security", "measure_id", "CM", ("case_id", "person_id")
    ),
    "arrest_review": ResourceSpec("procuratorate", "review_id", "AR", ("case_id", "person_id")),
    "prosecution_transfer": ResourceSpec("public_security", "transfer_id", "PT", ("case_id",)),
    "indictment": ResourceSpec("procuratorate", "indictment_id", "IN", ("case_id",)),
    "judgment": ResourceSpec(
        "court", "judgment_id", "JD", ("case_id", "court_case_number", "defendant_id")
    ),
    "sentence_execution": ResourceSpec(
        "prison", "execution_id", "SE", ("case_id", "person_id", "court_case_number")
    ),
    "commutation_parole": ResourceSpec(
        "prison", "application_id", "CP", ("case_id", "person_id", "court_case_number")
    ),
    "community_correction": ResourceSpec(
        "justice", "correction_id", "CC", ("case_id", "person_id")
    ),
    "technical_investigation": ResourceSpec("public_security", "ti_id", "TI", ("case_id",)),
}

#: Fields whose value is a person id (so the case index can be decoded from it).
PERSON_REF_FIELDS: Final = frozenset({"person_id", "defendant_id", "target_person_id"})
MAX_CASES: Final = 100_000_000
_CASE_DIGITS: Final = 8


def case_id(index: int) -> str:
    """Return the case id of case ``index`` (``C`` + 8 digits)."""
    return f"C{index:0{_CASE_DIGITS}d}"


def record_id(resource: str, index: int, ordinal: int) -> str:
    """Return the id of the ``ordinal``-th (1-based, < 100) record of ``resource`` in a case."""
    if resource == "case":
        return case_id(index)
    return f"{RESOURCES[resource].id_prefix}{index:0{_CASE_DIGITS}d}{ordinal:02d}"


def case_index_of(resource: str, any_id: str) -> int | None:
    """Decode the case index from an id of ``resource``; None if the id is malformed.

    ``resource`` may be ``"person"`` for person references (person_id, defendant_id, …).
    """
    prefix = RESOURCES[resource].id_prefix
    if not any_id.startswith(prefix):
        return None
    digits = any_id[len(prefix) :]
    expected = _CASE_DIGITS if resource == "case" else _CASE_DIGITS + 2
    if len(digits) != expected or not digits.isascii() or not digits.isdigit():
        return None
    return int(digits[:_CASE_DIGITS])
