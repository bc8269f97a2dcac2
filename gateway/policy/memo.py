"""The key under which a request decision is remembered (``PolicyEngine.decide``).

A decision is a pure function of what its rules can read. Conditions read only the request
attributes they name (the index lists them all: ``PolicyIndex.decision_attrs``); the rest of a
decision depends on the requester, resource, purpose, role, the day (validity windows), the
requested fields, the filter names and the case. A rule that reads ``time`` (unique per
request) or reads the request as a whole makes every decision fresh.
"""

from __future__ import annotations

from operator import attrgetter

from gateway.policy.cel_env import REQUEST_ATTRIBUTES, hashable_value, request_day
from gateway.policy.decision import AccessRequest, Grant

__all__ = [
    "CASE_KEY_FIELDS",
    "GRANT_KEY_FIELDS",
    "REQUEST_KEY_FIELDS",
    "REQUEST_READ_FIELDS",
    "covering_grants",
    "decision_key",
]

#: AccessRequest fields that are part of every key.
REQUEST_KEY_FIELDS = (
    "resource", "purpose", "requester_agency", "requester_kind", "role", "requested_fields",
    "case_number", "approval_reference", "channel",
)  # fmt: skip
#: AccessRequest fields that decide only through the conditions that read them (as request
#: attributes), or in another form: ``time`` as its day, ``filters`` by their names, ``case`` by
#: :data:`CASE_KEY_FIELDS`, ``grants`` by those that cover the request (``Grant.covers``
#: reads the time, the case and the record id: which grants cover is in the key whole).
REQUEST_READ_FIELDS = ("time", "operator_id", "record_id", "filters", "case", "grants")
#: Grant fields in the key: a covering grant is in the key whole (frozen, compared by value).
GRANT_KEY_FIELDS = (
    "grant_id", "requester_agency", "resource", "fields", "purpose", "case_id", "record_ids",
    "valid_from", "valid_until",
)  # fmt: skip
#: CaseContext fields in the key (``record`` by identity).
CASE_KEY_FIELDS = (
    "case_id", "police_case_number", "court_case_number", "handling_agencies", "stage",
    "secrecy_mark", "stationed_procuratorates", "record",
)  # fmt: skip


# C-level readers of the fields above (a key is built on every request): the record by identity.
_request_fields = attrgetter(*REQUEST_KEY_FIELDS)
_case_fields = attrgetter(*(name for name in CASE_KEY_FIELDS if name != "record"))


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
        record = case.record
        case_key = (_case_fields(case), None if record is None else id(record))
    try:
        return (
            _request_fields(request),
            case_key,
            frozenset(request.filters),
            request_day(request),
            tuple(hashable_value(REQUEST_ATTRIBUTES[name](request)) for name in attrs),
            covering_grants(request),
        )
    except TypeError:  # an unhashable value: decide afresh
        return None


def covering_grants(request: AccessRequest) -> tuple[Grant, ...]:
    """The request's grants that cover it (``Grant.covers``), in the order given."""
    if not request.grants:
        return ()
    return tuple(grant for grant in request.grants if grant.covers(request))
