"""The key under which a request decision is remembered (``PolicyEngine.decide``).

A decision is a pure function of what its rules can read. Conditions read only the request
attributes they name (the index lists them all: ``PolicyIndex.decision_attrs``); the rest of a
decision depends on the requester, resource, purpose, role, the day (validity windows), the
requested fields, the filter names and the case. A rule that reads ``time`` (unique per
request) or reads the request as a whole makes every decision fresh.
"""

from __future__ import annotations

from gateway.policy.cel_env import REQUEST_ATTRIBUTES, hashable_value, request_day
from gateway.policy.decision import AccessRequest

__all__ = ["decision_key"]


def decision_key(
    attrs: tuple[str, ...] | None, request: AccessRequest
) -> tuple[object, ...] | None:
    """Everything a decision on ``request`` depends on, or None: decide afresh.

    ``attrs`` are the request attributes any condition reads (None: unknown). The case is named
    by its labels and by the identity of its record object: a record fetched anew is another
    object, so a decision never outlives the case record it was made with (the memo keeps the
    record alive beside the decision, so the identity is not reused).
    """
    if attrs is None:
        return None
    case = request.case
    case_key = None
    if case is not None:
        case_key = (
            case.case_id, case.police_case_number, case.court_case_number,
            case.handling_agencies, case.stage, case.secrecy_mark,
            None if case.record is None else id(case.record),
        )  # fmt: skip
    try:
        return (
            request.resource, request.purpose, request.requester_agency,
            request.requester_kind, request.role, request.requested_fields,
            request.case_number, case_key, frozenset(request.filters), request_day(request),
            tuple(hashable_value(REQUEST_ATTRIBUTES[name](request)) for name in attrs),
        )  # fmt: skip
    except TypeError:  # an unhashable value: decide afresh
        return None
