"""Reading an exchange request: the X-* headers and the query, checked against the standard.

Header contract (docs/exchange.md):

* ``X-Purpose`` (required): a purpose code of the standard, e.g. ``TRIAL``.
* ``X-Operator-Id`` (required): the acting officer, ``[A-Za-z0-9_.:-]{1,64}``.
* ``X-Case-Number``: the case the request serves, as **percent-encoded UTF-8**
  (RFC 3986 §2.1), e.g. ``(2021)宁0104刑初123号`` is sent as
  ``(2021)%E5%AE%810104%E5%88%91%E5%88%9D123%E5%8F%B7``. HTTP header values cannot
  carry raw UTF-8 reliably (servers read them as Latin-1), so raw non-ASCII
  bytes are refused with 400. It must decode to a court case number (案号) whose court
  code names a court, or a police case number. A 案号 in full-width parentheses is the same
  case as in ASCII ones: it is read in its canonical (ASCII) form.
* ``X-Approval-Reference``: the approval a 挂牌督办 request acts under (督办批准文号),
  percent-encoded UTF-8 like ``X-Case-Number``, at most 64 characters; recorded in the audit
  entry with the request.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote

from starlette.datastructures import Headers, QueryParams

from gateway.errors import InvalidHeader, UnprocessableContent
from gateway.exchange.cursor import CursorBinding, CursorSealer, invalid_cursor
from gateway.standard import (
    FieldType,
    ResourceType,
    Standard,
    canonical_case_number,
    check_police_case_number,
    parse_case_number,
    parsed_case_number_check,
    validate_filter_value,
)

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "ExchangeHeaders",
    "SearchQuery",
    "check_record_id",
    "decode_approval_reference",
    "decode_case_number",
    "parse_fetch_query",
    "parse_fields",
    "parse_headers",
    "parse_search_query",
    "query_params",
]

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
_OPERATOR = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
# The standard's record-id alphabet: nothing to traverse, encode or inject.
_RECORD_ID = re.compile(r"^[0-9A-Za-z][0-9A-Za-z._:-]{0,63}$")
# ASCII digits only: str.isdigit() also takes ² and full-width or Arabic-Indic digits.
_LIMIT = re.compile(r"[0-9]{1,3}")
_RESERVED_PARAMS = frozenset({"fields", "limit", "cursor"})


@dataclass(frozen=True)
class ExchangeHeaders:
    purpose: str
    operator_id: str
    case_number: str | None
    approval_reference: str | None = None


def _percent_decoded(header: str, raw: str) -> str:
    if not raw.isascii():
        raise InvalidHeader(
            header,
            f"{header} carries raw non-ASCII bytes; send it percent-encoded UTF-8, "
            "e.g. (2021)%E5%AE%810104%E5%88%91%E5%88%9D123%E5%8F%B7",
        )
    try:
        decoded = unquote(raw, encoding="utf-8", errors="strict")
    except UnicodeDecodeError as exc:
        raise InvalidHeader(header, f"{header} does not percent-decode to UTF-8") from exc
    return decoded.strip()


_CASE_NUMBER_CHECK = "gateway.exchange.request.parsed_case_number_check"


_DECODED_CASE_NUMBERS = "gateway.exchange.request.decoded_case_numbers"
#: Header values remembered per standard (emptied when full): officers ask about the same
#: cases again and again, and decoding one costs ~30 µs (percent-decoding, parsing, checks).
DECODED_CASE_NUMBERS_MAX = 4096


def decode_case_number(raw: str, standard: Standard | None = None) -> str:
    """Percent-decode an ``X-Case-Number`` value and check it is a case number.

    A 案号 is returned in its canonical form (ASCII parentheses); with ``standard``, its court
    code must name a court (a GB/T 2260 division or a court of the standard). With
    ``standard``, a value decoded before is answered from memory (refusals never are).
    """
    if standard is None:
        return _decode_case_number(raw, None)
    known: dict[str, str] = standard.derived(_DECODED_CASE_NUMBERS, lambda _: {})
    decoded = known.get(raw)
    if decoded is None:
        decoded = _decode_case_number(raw, standard)
        if len(known) >= DECODED_CASE_NUMBERS_MAX:
            known.clear()
        known[raw] = decoded
    return decoded


def _decode_case_number(raw: str, standard: Standard | None) -> str:
    decoded = _percent_decoded("X-Case-Number", raw)
    # Parsed once: its form, then the standard's codes on the parts, then its canonical text.
    try:
        number = parse_case_number(decoded)
    except ValueError:
        number = None
    if number is not None:
        # The check holds the standard's court and division codes: built once per standard
        # (building it took ~75 µs, on every request that named a case).
        check = (
            None
            if standard is None
            else standard.derived(_CASE_NUMBER_CHECK, parsed_case_number_check)
        )
        if check is not None and (reason := check(number)):
            raise InvalidHeader("X-Case-Number", f"X-Case-Number: {reason}")
        return str(number)
    if check_police_case_number(decoded) is not None:
        raise InvalidHeader(
            "X-Case-Number",
            "X-Case-Number is neither a court case number like (2021)宁0104刑初123号 "
            "nor a police case number like A6401040000002021010001",
        )
    return decoded


def decode_approval_reference(raw: str) -> str:
    """Percent-decode ``X-Approval-Reference``: 1-64 printable characters."""
    decoded = _percent_decoded("X-Approval-Reference", raw)
    if not 1 <= len(decoded) <= 64 or not decoded.isprintable():
        raise InvalidHeader(
            "X-Approval-Reference",
            "X-Approval-Reference is the approval's document number (督办批准文号), "
            "1-64 printable characters, percent-encoded UTF-8",
        )
    return decoded


_EXCHANGE_HEADERS = (b"x-purpose", b"x-operator-id", b"x-case-number", b"x-approval-reference")


def parse_headers(headers: Headers, standard: Standard) -> ExchangeHeaders:
    # One pass over the raw list (names arrive lower-cased); each ``Headers.get`` would scan
    # and decode the whole list again. The first of a repeated header wins, as with ``get``.
    found: dict[bytes, str] = {}
    for name, value in headers.raw:
        if name in _EXCHANGE_HEADERS and name not in found:
            found[name] = value.decode("latin-1")
    purpose = found.get(b"x-purpose")
    if not purpose:
        raise InvalidHeader("X-Purpose", "X-Purpose is required: the purpose code of the request")
    try:
        standard.purpose(purpose)
    except KeyError:
        raise InvalidHeader(
            "X-Purpose", f"unknown purpose {purpose[:64]!r}; GET /v1/catalog lists the codes"
        ) from None
    operator = found.get(b"x-operator-id")
    if not operator or not _OPERATOR.match(operator):
        raise InvalidHeader("X-Operator-Id", _operator_problem(operator))
    raw_case = found.get(b"x-case-number")
    case_number = decode_case_number(raw_case, standard) if raw_case else None
    raw_approval = found.get(b"x-approval-reference")
    approval = decode_approval_reference(raw_approval) if raw_approval else None
    return ExchangeHeaders(
        purpose=purpose, operator_id=operator, case_number=case_number, approval_reference=approval
    )


def _operator_problem(operator: str | None) -> str:
    rule = "the acting officer's id, 1-64 of [A-Za-z0-9_.:-]"
    if not operator:
        return f"X-Operator-Id is required: {rule}"
    if not operator.isascii():
        return (
            f"X-Operator-Id carries non-ASCII bytes (a name?); send the officer's id: {rule}, "
            "e.g. court-officer-01"
        )
    if len(operator) > 64:
        return f"X-Operator-Id is {len(operator)} characters long; it must be {rule}"
    return f"X-Operator-Id has characters outside [A-Za-z0-9_.:-]; it must be {rule}"


def parse_fields(resource: ResourceType, raw: str | None) -> frozenset[str] | None:
    if raw is None:
        return None
    names = [name.strip() for name in raw.split(",") if name.strip()]
    if not names:
        raise UnprocessableContent(
            "fields is empty", [{"field": "fields", "reason": "give one or more field names"}]
        )
    unknown = sorted({n for n in names if not resource.has_field(n)})
    if unknown:
        raise UnprocessableContent(
            f"unknown field(s) of {resource.name}: {', '.join(u[:64] for u in unknown)}",
            [
                {"field": "fields", "reason": f"not a field of {resource.name}: {name[:64]}"}
                for name in unknown
            ],
        )
    return frozenset(names)


@dataclass(frozen=True)
class SearchQuery:
    filters: dict[str, str]
    fields: frozenset[str] | None
    limit: int
    after: str | None
    # What this search's cursors are sealed to: the caller and the resource and filters.
    binding: CursorBinding


def _fingerprint(resource: str, filters: Mapping[str, str]) -> str:
    text = resource + "\n" + "\n".join(f"{k}={v}" for k, v in sorted(filters.items()))
    return hashlib.sha256(text.encode()).hexdigest()


def parse_search_query(
    standard: Standard,
    resource: ResourceType,
    params: QueryParams,
    *,
    cursors: CursorSealer,
    client_id: str,
    agency: str,
) -> SearchQuery:
    errors: list[dict[str, str]] = []
    filters: dict[str, str] = {}
    for name in params:
        values = params.getlist(name)
        if name in _RESERVED_PARAMS:
            if len(values) > 1:
                errors.append({"field": name, "reason": "given more than once"})
            continue
        if len(values) > 1:
            errors.append({"field": name, "reason": "given more than once"})
            continue
        if not resource.has_field(name) or name not in resource.filterable_fields:
            errors.append({"field": name[:64], "reason": f"not a search filter of {resource.name}"})
            continue
        reason = validate_filter_value(standard, resource.name, name, values[0])
        if reason is not None:
            errors.append({"field": name, "reason": reason})
            continue
        value = values[0]
        if resource.field(name).type is FieldType.CASE_NUMBER:
            value = canonical_case_number(value)  # （2021）… and (2021)… are one case
        filters[name] = value
    limit = DEFAULT_LIMIT
    raw_limit = params.get("limit")
    if raw_limit is not None:
        if not _LIMIT.fullmatch(raw_limit) or not 1 <= int(raw_limit) <= MAX_LIMIT:
            errors.append({"field": "limit", "reason": f"an integer from 1 to {MAX_LIMIT}"})
        else:
            limit = int(raw_limit)
    if errors:
        raise UnprocessableContent(
            "invalid search: " + ", ".join(e["field"] for e in errors), errors
        )
    if not filters:
        raise UnprocessableContent(
            f"a search needs at least one filter of {resource.name} (minimum necessary): "
            + ", ".join(resource.filterable_fields),
            [{"field": "filters", "reason": "none given"}],
        )
    fields = parse_fields(resource, params.get("fields"))
    binding = CursorBinding(client_id, agency, _fingerprint(resource.name, filters))
    after = None
    raw_cursor = params.get("cursor")
    if raw_cursor is not None:
        after = cursors.open(raw_cursor, binding)
        if not _RECORD_ID.fullmatch(after):
            # Only the gateway seals cursors, but an upstream id outside the alphabet must
            # not travel back to the upstream as a position.
            raise invalid_cursor()
    return SearchQuery(filters, fields, limit, after, binding)


def check_record_id(record_id: str) -> None:
    if not _RECORD_ID.fullmatch(record_id):
        raise UnprocessableContent(
            "malformed record id",
            [{"field": "record_id", "reason": "1-64 of [0-9A-Za-z._:-], starting alphanumeric"}],
        )


_NO_PARAMS = QueryParams()


def query_params(scope_query: bytes) -> QueryParams:
    """The request's query parameters; one shared empty set for the usual empty query string
    (parsing an empty one still costs Starlette a parser and a multi-dict per request)."""
    return QueryParams(scope_query) if scope_query else _NO_PARAMS


def parse_fetch_query(resource: ResourceType, params: QueryParams) -> frozenset[str] | None:
    """A fetch takes ``fields`` only."""
    extra = sorted(set(params) - {"fields"})
    if extra or len(params.getlist("fields")) > 1:
        raise UnprocessableContent(
            "a fetch by id takes only the fields parameter",
            [{"field": e[:64], "reason": "not a parameter of this route"} for e in extra]
            or [{"field": "fields", "reason": "given more than once"}],
        )
    return parse_fields(resource, params.get("fields"))
