"""Unified sharing standard (统一标准): models, loader, format validators, record checks, catalog.

Typical use::

    from pathlib import Path
    from gateway.standard import load_standard, validate_record, catalog_document

    standard = load_standard(Path("policies/standard"))
    violations = validate_record(standard, "person", record)
"""

from gateway.standard.catalog import catalog_document
from gateway.standard.errors import StandardError, StandardProblem
from gateway.standard.loader import DIVISION_TABLE, load_standard
from gateway.standard.model import (
    Agency,
    AgencyKind,
    CodeTable,
    FieldSpec,
    FieldType,
    Grade,
    Purpose,
    ResourceType,
    SharingClass,
    SharingCondition,
    Standard,
    StandardInfo,
)
from gateway.standard.records import (
    CASE_TYPE_TABLE,
    Checker,
    FieldViolation,
    RecordValidator,
    case_number_check,
    compile_record_validators,
    parsed_case_number_check,
    record_validator,
    validate_filter_value,
    validate_record,
)
from gateway.standard.validators import (
    AGENCY_CODE_PATTERN,
    CRIMINAL_CASE_TYPE_CODES,
    DIVISION_CODE_PATTERN,
    CaseNumber,
    PoliceCaseNumber,
    canonical_case_number,
    check_case_number,
    check_citizen_id,
    check_court_code,
    check_iso_date,
    check_police_case_number,
    citizen_id_birth_date,
    citizen_id_check_char,
    court_code_division,
    is_iso_date,
    is_valid_case_number,
    is_valid_citizen_id,
    is_valid_division,
    is_valid_police_case_number,
    parse_case_number,
    parse_iso_date,
    parse_police_case_number,
)

__all__ = [
    "AGENCY_CODE_PATTERN",
    "CASE_TYPE_TABLE",
    "CRIMINAL_CASE_TYPE_CODES",
    "DIVISION_CODE_PATTERN",
    "DIVISION_TABLE",
    "Agency",
    "AgencyKind",
    "CaseNumber",
    "Checker",
    "CodeTable",
    "FieldSpec",
    "FieldType",
    "FieldViolation",
    "Grade",
    "PoliceCaseNumber",
    "Purpose",
    "RecordValidator",
    "ResourceType",
    "SharingClass",
    "SharingCondition",
    "Standard",
    "StandardError",
    "StandardInfo",
    "StandardProblem",
    "canonical_case_number",
    "case_number_check",
    "catalog_document",
    "check_case_number",
    "check_citizen_id",
    "check_court_code",
    "check_iso_date",
    "check_police_case_number",
    "citizen_id_birth_date",
    "citizen_id_check_char",
    "compile_record_validators",
    "court_code_division",
    "is_iso_date",
    "is_valid_case_number",
    "is_valid_citizen_id",
    "is_valid_division",
    "is_valid_police_case_number",
    "load_standard",
    "parse_case_number",
    "parse_iso_date",
    "parse_police_case_number",
    "parsed_case_number_check",
    "record_validator",
    "validate_filter_value",
    "validate_record",
]
