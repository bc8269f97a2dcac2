"""JSON renderings of requests and decisions (explain, CLI, test suites, admin routes).

Contract: every function returns fresh JSON-ready data (``dict``/``list``/``str``/``int``/
``bool``/``None``; sets become sorted lists). :func:`request_from_json` is the inverse of
:func:`request_to_json` and the format of ``gateway policy explain --request FILE.json``::

    {"requester_agency": "FY640104", "requester_kind": "court",   # kind optional
     "resource": "person", "purpose": "TRIAL", "operator_id": "op-1",
     "time": "2025-06-01T10:00:00+08:00",                          # optional: now
     "case_number": "…", "role": null, "record_id": null, "filters": {},
     "approval_reference": null,                                    # X-Approval-Reference
     "fields": ["name", "id_number"],                               # optional: all fields
     "case": {"case_id": "C1", "handling_agencies": ["FY640104"], "stage": "TRIAL",
              "secrecy_mark": "NONE", "police_case_number": null, "court_case_number": null,
              "stationed_procuratorates": [],                       # optional
              "closed_trial": false, "work_secret": false,          # optional, default false
              "has_sealed_juvenile": false}}

The case's flags (``closed_trial``, ``work_secret``, ``has_sealed_juvenile``) default to false
here, where the case is written by hand; in the gateway the case is the owner's whole record,
in which the standard makes them required.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from gateway.policy.decision import (
    AccessRequest,
    CaseContext,
    RecordDecision,
    RequestDecision,
    SubjectRecords,
)

if TYPE_CHECKING:
    from gateway.policy.policy_set import PolicySet
    from gateway.standard import Standard

__all__ = [
    "decision_to_json",
    "explain_document",
    "record_decision_to_json",
    "request_from_json",
    "request_to_json",
    "subjects_from_json",
]

_REQUEST_KEYS = frozenset(
    {
        "requester_agency", "requester_kind", "resource", "purpose", "operator_id", "time",
        "case_number", "case", "fields", "requested_fields", "record_id", "filters", "role",
        "approval_reference", "channel",
    }
)  # fmt: skip
_CASE_FLAGS = ("closed_trial", "work_secret", "has_sealed_juvenile")
_CASE_KEYS = frozenset(
    {"case_id", "handling_agencies", "stage", "secrecy_mark", "police_case_number",
     "court_case_number", "stationed_procuratorates", *_CASE_FLAGS}
)  # fmt: skip


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, frozenset | set):
        return sorted(_jsonable(v) for v in value)
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def request_to_json(request: AccessRequest) -> dict[str, Any]:
    """The request as JSON (see module docstring)."""
    case = request.case
    return {
        "requester_agency": request.requester_agency,
        "requester_kind": request.requester_kind,
        "resource": request.resource,
        "purpose": request.purpose,
        "operator_id": request.operator_id,
        "time": request.time.isoformat(),
        "case_number": request.case_number,
        "case": None
        if case is None
        else {
            "case_id": case.case_id,
            "handling_agencies": sorted(case.handling_agencies),
            "stage": case.stage,
            "secrecy_mark": case.secrecy_mark,
            "police_case_number": case.police_case_number,
            "court_case_number": case.court_case_number,
            "stationed_procuratorates": sorted(case.stationed_procuratorates),
            **{name: case.flag(name) for name in _CASE_FLAGS},
        },
        "fields": None if request.requested_fields is None else sorted(request.requested_fields),
        "record_id": request.record_id,
        "filters": dict(request.filters),
        "role": request.role,
        "approval_reference": request.approval_reference,
        "channel": request.channel,
    }


def _strings(value: object, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{what} must be a list of strings")
    return list(value)


def _opt_str(data: Mapping[str, object], key: str) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{key} must be a string")
    return value


def request_from_json(
    data: object, standard: Standard | None = None, *, now: datetime | None = None
) -> AccessRequest:
    """Build an ``AccessRequest``; ``ValueError`` names the first problem.

    ``requester_kind`` defaults to the agency's kind in ``standard``; ``time`` to ``now``.
    """
    if not isinstance(data, Mapping):
        raise ValueError("a request must be a JSON/YAML object")
    unknown = sorted(set(data) - _REQUEST_KEYS)
    if unknown:
        raise ValueError(f"unknown request key(s): {', '.join(unknown)}")
    values: dict[str, str] = {}
    for key in ("requester_agency", "resource", "purpose"):
        value = data.get(key)
        if not isinstance(value, str) or not value:
            raise ValueError(f"request.{key} is required (a string)")
        values[key] = value
    kind = _opt_str(data, "requester_kind")
    if kind is None:
        if standard is None:
            raise ValueError("request.requester_kind is required")
        try:
            kind = standard.agency(values["requester_agency"]).kind
        except KeyError:
            raise ValueError(f"unknown agency {values['requester_agency']!r}") from None
    raw_time = data.get("time")
    if raw_time is None:
        moment = now or datetime.now().astimezone()
    elif isinstance(raw_time, datetime):
        moment = raw_time
    elif isinstance(raw_time, str):
        moment = datetime.fromisoformat(raw_time.replace("Z", "+00:00"))
    else:
        raise ValueError("request.time must be an ISO 8601 / RFC 3339 string")
    case = None
    raw_case = data.get("case")
    if raw_case is not None:
        if not isinstance(raw_case, Mapping):
            raise ValueError("request.case must be an object")
        bad = sorted(set(raw_case) - _CASE_KEYS)
        if bad:
            raise ValueError(f"unknown case key(s): {', '.join(bad)}")
        case_id = _opt_str(raw_case, "case_id")
        if not case_id:
            raise ValueError("request.case.case_id is required")
        flags: dict[str, bool] = {}
        for name in _CASE_FLAGS:
            value = raw_case.get(name, False)
            if not isinstance(value, bool):
                raise ValueError(f"request.case.{name} must be true or false")
            flags[name] = value
        case = CaseContext(
            case_id=case_id,
            police_case_number=_opt_str(raw_case, "police_case_number"),
            court_case_number=_opt_str(raw_case, "court_case_number"),
            handling_agencies=frozenset(
                _strings(raw_case.get("handling_agencies", []), "case.handling_agencies")
            ),
            stage=_opt_str(raw_case, "stage"),
            secrecy_mark=_opt_str(raw_case, "secrecy_mark"),
            stationed_procuratorates=frozenset(
                _strings(
                    raw_case.get("stationed_procuratorates", []), "case.stationed_procuratorates"
                )
            ),
        )
        case = replace(case, record={**case.as_record(), **flags})
    raw_fields = data.get("fields", data.get("requested_fields"))
    filters = data.get("filters") or {}
    if not isinstance(filters, Mapping):
        raise ValueError("request.filters must be an object")
    operator = _opt_str(data, "operator_id") or "policy-explain"
    return AccessRequest(
        requester_agency=values["requester_agency"],
        requester_kind=kind,
        resource=values["resource"],
        purpose=values["purpose"],
        operator_id=operator,
        time=moment,
        case_number=_opt_str(data, "case_number"),
        case=case,
        requested_fields=None
        if raw_fields is None
        else frozenset(_strings(raw_fields, "request.fields")),
        record_id=_opt_str(data, "record_id"),
        filters={str(k): str(v) for k, v in filters.items()},
        role=_opt_str(data, "role"),
        approval_reference=_opt_str(data, "approval_reference"),
        channel=_channel(data),
    )


_CHANNELS = ("read", "delivery")


def _channel(data: Mapping[str, Any]) -> str:
    value = data.get("channel", "read")
    if value not in _CHANNELS:
        raise ValueError(f"request.channel must be one of: {', '.join(_CHANNELS)}")
    return str(value)


def subjects_from_json(
    data: object, standard: Standard, request: AccessRequest | None = None
) -> SubjectRecords:
    """The subject records of an explain or a policy test; ``ValueError`` names the problem.

    Shape: ``{"<resource>": [records …], "case_persons": [person records …]}``: records of the
    persons and cases the explained records refer to, by resource type (each identified by the
    standard's id field), and the persons of the request's case (needed by a ``reach``). The
    request's own case needs no entry: the ``case`` object of the request is that subject.
    """
    subjects = SubjectRecords()
    if data is None:
        return subjects
    if not isinstance(data, Mapping):
        raise ValueError("subjects must be an object: {resource: [records], case_persons: [...]}")
    for key, records in data.items():
        if not isinstance(records, list) or not all(isinstance(r, Mapping) for r in records):
            raise ValueError(f"subjects.{key} must be a list of records (objects)")
        resource = "person" if key == "case_persons" else key
        if not isinstance(resource, str) or not standard.has_resource(resource):
            raise ValueError(f"subjects: unknown resource type {str(key)[:64]!r}")
        id_field = standard.resource(resource).id_field
        if not all(isinstance(r.get(id_field), str) for r in records):
            raise ValueError(f"subjects.{key}: every record needs its {id_field}")
        subjects.add(resource, id_field, records)
        if key == "case_persons":
            if request is None or request.case is None:
                raise ValueError("subjects.case_persons needs a request with a case")
            subjects.case_persons[request.case.case_id] = tuple(records)
    return subjects


def decision_to_json(decision: RequestDecision) -> dict[str, Any]:
    """A request decision as JSON (the opaque plan left out)."""
    return {
        "outcome": decision.outcome.value,
        "reason": decision.reason,
        "rule_ids": list(decision.rule_ids),
        "policy_version": decision.policy_version,
        "permitted_fields": sorted(decision.permitted_fields),
        "withheld_fields": sorted(decision.withheld_fields),
        "bound_case_id": decision.bound_case_id,
    }


def record_decision_to_json(decision: RecordDecision) -> dict[str, Any]:
    """A record decision as JSON, with the released (masked) record."""
    return {
        "released": decision.released,
        "conceal": decision.conceal,
        "fields": list(decision.record),
        "record": _jsonable(decision.record),
        "withheld_fields": sorted(decision.withheld_fields),
        "masked_fields": sorted(decision.masked_fields),
        "rule_ids": list(decision.rule_ids),
        "reason": decision.reason,
    }


def explain_document(
    policy_set: PolicySet,
    request: AccessRequest,
    decision: RequestDecision,
    trace: Sequence[Mapping[str, Any]],
    records: Sequence[tuple[Mapping[str, Any], RecordDecision, Sequence[Mapping[str, Any]]]],
) -> dict[str, Any]:
    """The explain document: request, decision, trace, per-record decisions, rule sources."""
    rule_ids: dict[str, None] = dict.fromkeys(decision.rule_ids)
    out_records = []
    for index, (record, verdict, record_trace) in enumerate(records):
        rule_ids.update(dict.fromkeys(verdict.rule_ids))
        resource = policy_set.standard
        id_field = (
            resource.resource(request.resource).id_field
            if resource.has_resource(request.resource)
            else None
        )
        out_records.append(
            {
                "index": index,
                "id": None if id_field is None else _jsonable(record.get(id_field)),
                **record_decision_to_json(verdict),
                "trace": [dict(t) for t in record_trace],
            }
        )
    sources = {}
    for rule_id in rule_ids:
        loc = policy_set.location(rule_id)
        if loc is not None:
            sources[rule_id] = str(loc)
    return {
        "policy_version": policy_set.version,
        "request": request_to_json(request),
        "decision": decision_to_json(decision),
        "trace": [dict(t) for t in trace],
        "records": out_records,
        "rule_sources": sources,
    }
