"""Validate records and request filter values against the standard.

Contracts:

* Checkers are compiled once per standard (at load time, see ``compile_record_validators``):
  each field gets a closure chosen by its type, so validating a record does no per-record
  dispatch on type names.
* A record is a mapping from field name to a JSON-like value. A field that is absent and a
  field whose value is ``None`` are treated alike: an error only if the field is required.
  Empty strings are invalid (send ``null`` for a missing value). A required list field must be
  non-empty. Booleans are not integers.
* Reasons are short English texts that never contain the offending value (at most a
  non-identifying fragment such as a 案号 type code), so violations can be logged without
  leaking personal information.
* Unknown resource types raise ``KeyError``; unknown fields in a record are violations.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import TypeAlias

from gateway.standard.model import FieldSpec, FieldType, Standard
from gateway.standard.validators import (
    CRIMINAL_CASE_TYPE_CODES,
    CaseNumber,
    check_citizen_id,
    check_court_code,
    check_iso_date,
    check_police_case_number,
    parse_case_number,
)

__all__ = [
    "CASE_TYPE_TABLE",
    "Checker",
    "FieldViolation",
    "RecordValidator",
    "case_number_check",
    "compile_record_validators",
    "parsed_case_number_check",
    "record_validator",
    "validate_filter_value",
    "validate_record",
]

#: Code table holding the court case type codes accepted in ``case_number`` fields.
CASE_TYPE_TABLE = "court_case_type"
_DIVISION_TABLE = "division"
_CACHE_KEY = "gateway.standard.records"

#: A compiled checker: returns ``None`` for a valid (non-null) value, else a reason.
Checker: TypeAlias = Callable[[object], str | None]


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """A field of a record that does not conform: ``field`` name and ``reason``."""

    field: str
    reason: str


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


def _string_based(check: Callable[[str], str | None] | None) -> Checker:
    def checker(value: object) -> str | None:
        if not isinstance(value, str):
            return f"expected a string, got {_json_type(value)}"
        if not value:
            return "empty string (send null for a missing value)"
        return None if check is None else check(value)

    return checker


def _string_checker(spec: FieldSpec) -> Checker:
    max_length = spec.max_length
    pattern = re.compile(spec.pattern) if spec.pattern is not None else None

    def check(value: str) -> str | None:
        if max_length is not None and len(value) > max_length:
            return f"longer than {max_length} characters"
        if pattern is not None and pattern.fullmatch(value) is None:
            return "does not match the field's pattern"
        return None

    return _string_based(check if max_length is not None or pattern is not None else None)


def _integer_checker(spec: FieldSpec) -> Checker:
    low, high = spec.minimum, spec.maximum

    def checker(value: object) -> str | None:
        if not isinstance(value, int) or isinstance(value, bool):
            return f"expected an integer, got {_json_type(value)}"
        if low is not None and value < low:
            return f"less than the minimum {low}"
        if high is not None and value > high:
            return f"greater than the maximum {high}"
        return None

    return checker


def _boolean_checker(value: object) -> str | None:
    if isinstance(value, bool):
        return None
    return f"expected a boolean, got {_json_type(value)}"


def _member_checker(codes: Collection[str], what: str) -> Checker:
    known = frozenset(codes)

    def check(value: str) -> str | None:
        return None if value in known else what

    return _string_based(check)


def _item_checker(standard: Standard, spec: FieldSpec) -> Checker:
    kind = spec.type
    if kind is FieldType.STRING or kind is FieldType.TEXT:
        return _string_checker(spec)
    if kind is FieldType.INTEGER:
        return _integer_checker(spec)
    if kind is FieldType.BOOLEAN:
        return _boolean_checker
    if kind is FieldType.DATE:
        return _string_based(check_iso_date)
    if kind is FieldType.CODE:
        table = standard.code_table(str(spec.code_table))
        return _member_checker(table.codes, f"not a code of table {table.id!r}")
    if kind is FieldType.CITIZEN_ID:
        return _string_based(check_citizen_id)
    if kind is FieldType.CASE_NUMBER:
        return _string_based(case_number_check(standard))
    if kind is FieldType.POLICE_CASE_NUMBER:
        return _string_based(check_police_case_number)
    if kind is FieldType.DIVISION:
        table = standard.code_table(_DIVISION_TABLE)
        return _member_checker(table.codes, f"not a division of code table {table.id!r}")
    if kind is FieldType.AGENCY_CODE:
        if spec.agency_kind is None:
            return _member_checker([a.code for a in standard.agencies], "unknown agency code")
        agencies = [a.code for a in standard.agencies_of_kind(spec.agency_kind)]
        return _member_checker(agencies, f"not an agency of kind {spec.agency_kind!r}")
    raise AssertionError(f"unhandled field type {kind}")  # pragma: no cover


def case_number_check(standard: Standard) -> Callable[[str], str | None]:
    """Reason why a string is not a 案号 of the standard, or ``None``.

    Its type code must be in code table ``court_case_type`` and its court code must name a
    court: one of the standard's courts, or one read from a division of code table
    ``division`` (``check_court_code``).
    """
    type_codes, divisions, courts = _case_number_codes(standard)

    def check(value: str) -> str | None:
        try:
            number = parse_case_number(value, type_codes=type_codes)
        except ValueError as exc:
            return str(exc)
        return check_court_code(number.court_code, divisions, courts)

    return check


def parsed_case_number_check(standard: Standard) -> Callable[[CaseNumber], str | None]:
    """:func:`case_number_check` for a 案号 already parsed (``parse_case_number``), no re-parse.

    The same reasons: a number that parses with any criminal type code fails
    :func:`case_number_check` only on its type code (the last step of the parse, with
    ``parse_case_number``'s reason) or on its court code.
    """
    type_codes, divisions, courts = _case_number_codes(standard)

    def check(number: CaseNumber) -> str | None:
        if number.type_code not in type_codes:
            return f"unknown case type code {number.type_code!r}"
        return check_court_code(number.court_code, divisions, courts)

    return check


def _case_number_codes(
    standard: Standard,
) -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """The standard's 案号 type codes, division codes and court codes."""
    type_codes: frozenset[str] = CRIMINAL_CASE_TYPE_CODES
    if any(t.id == CASE_TYPE_TABLE for t in standard.code_tables):
        type_codes = frozenset(standard.code_table(CASE_TYPE_TABLE).codes)
    divisions: frozenset[str] = frozenset()
    if any(t.id == _DIVISION_TABLE for t in standard.code_tables):
        divisions = frozenset(standard.code_table(_DIVISION_TABLE).codes)
    courts = frozenset(a.court_code for a in standard.agencies if a.court_code is not None)
    return type_codes, divisions, courts


def _list_checker(item: Checker, required: bool) -> Checker:
    def checker(value: object) -> str | None:
        if not isinstance(value, list | tuple):
            return f"expected an array, got {_json_type(value)}"
        if required and not value:
            return "required list is empty"
        for i, element in enumerate(value):
            if element is None:
                return f"item {i} is null"
            reason = item(element)
            if reason is not None:
                return f"item {i}: {reason}"
        return None

    return checker


def _issuer_check(standard: Standard, number_field: str, court_field: str) -> _CrossCheck:
    """The 案号 in ``number_field`` was issued by the court in ``court_field`` (same record)."""
    codes = {a.code: a.court_code for a in standard.agencies}

    def check(record: Mapping[str, object]) -> FieldViolation | None:
        number, court = record.get(number_field), record.get(court_field)
        if not isinstance(number, str) or not isinstance(court, str):
            return None  # missing or malformed: the field checks report it
        try:
            court_code = parse_case_number(number, type_codes=_ANY_TYPE).court_code
        except ValueError:
            return None
        if codes.get(court) != court_code:
            return FieldViolation(
                number_field, f"the court code does not agree with the issuing court {court_field}"
            )
        return None

    return check


class _AnyType(frozenset[str]):
    """Every type code: the type is checked by the field's own checker."""

    def __contains__(self, code: object) -> bool:
        return isinstance(code, str)


_ANY_TYPE = _AnyType()
_CrossCheck: TypeAlias = Callable[[Mapping[str, object]], "FieldViolation | None"]


class RecordValidator:
    """Compiled checkers for one resource type. Build through ``compile_record_validators``."""

    __slots__ = ("_checks", "_cross", "_filter_checks", "_known", "resource")

    def __init__(self, standard: Standard, resource_type: str) -> None:
        resource = standard.resource(resource_type)
        self.resource = resource.name
        checks: list[tuple[str, bool, Checker]] = []
        filters: dict[str, Checker] = {}
        for spec in resource.fields:
            item = _item_checker(standard, spec)
            whole = _list_checker(item, spec.required) if spec.is_list else item
            checks.append((spec.name, spec.required, whole))
            if spec.filterable:
                filters[spec.name] = item
        self._checks = tuple(checks)
        self._known = frozenset(resource.field_names)
        self._filter_checks = filters
        self._cross = tuple(
            _issuer_check(standard, spec.name, spec.issued_by)
            for spec in resource.fields
            if spec.issued_by is not None
        )

    def validate(self, record: Mapping[str, object]) -> list[FieldViolation]:
        """Violations of ``record`` in field order, then unknown fields; empty if it conforms."""
        violations: list[FieldViolation] = []
        get = record.get
        for name, required, check in self._checks:
            value = get(name)
            if value is None:
                if required:
                    violations.append(FieldViolation(name, "required field is missing or null"))
                continue
            reason = check(value)
            if reason is not None:
                violations.append(FieldViolation(name, reason))
        for cross in self._cross:
            found = cross(record)
            if found is not None:
                violations.append(found)
        known = self._known
        for key in record:
            if key not in known:
                violations.append(FieldViolation(str(key), "unknown field"))
        return violations

    def validate_filter(self, field: str, value: object) -> str | None:
        """Reason why ``value`` is not a usable filter on ``field``, or ``None``.

        For a list field the value is one element of the list.
        """
        check = self._filter_checks.get(field)
        if check is None:
            return "unknown field" if field not in self._known else "field is not filterable"
        if value is None:
            return "filter value is null"
        return check(value)


def _compile(standard: Standard) -> dict[str, RecordValidator]:
    return {r.name: RecordValidator(standard, r.name) for r in standard.resources}


def compile_record_validators(standard: Standard) -> Mapping[str, RecordValidator]:
    """Compile (once, memoised on ``standard``) the validators of every resource type."""
    return standard.derived(_CACHE_KEY, _compile)


def record_validator(standard: Standard, resource_type: str) -> RecordValidator:
    """The compiled validator for ``resource_type``; ``KeyError`` if unknown."""
    return compile_record_validators(standard)[resource_type]


def validate_record(
    standard: Standard, resource_type: str, record: Mapping[str, object]
) -> list[FieldViolation]:
    """Check ``record`` against ``resource_type``: required fields, types, code values, formats
    (citizen ID, 案号, police case number, division, agency codes, ISO dates), unknown fields.

    Returns the violations (empty list = valid). ``KeyError`` for an unknown resource type.
    """
    return compile_record_validators(standard)[resource_type].validate(record)


def validate_filter_value(
    standard: Standard, resource: str, field: str, value: object
) -> str | None:
    """Reason why ``value`` cannot be used as a request filter on ``resource.field``, or ``None``.

    The field must exist and be filterable; the value must be valid for the field's type (one
    element for a list field). ``KeyError`` for an unknown resource type.
    """
    return compile_record_validators(standard)[resource].validate_filter(field, value)
