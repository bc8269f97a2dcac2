"""The choke point for a delivery's content, decided for the RECIPIENT: refuse, never strip.

Contract of :func:`check_for_recipient`: given the recipient's :class:`AccessRequest` (the
recipient's agency and kind, the purpose it receives the kind under, the case, the record's
fields requested) and the record with its resolved subjects, it asks the policy decision point
exactly as a read by the recipient would, and returns the record decision only if the record
would reach the recipient whole: released, with no field withheld or masked and no value
changed. Otherwise it raises :class:`~gateway.errors.Forbidden` (403) naming the rules and,
where one field is the cause, the field (``extra["field"]``, every such field in
``extra["fields"]``). The sender owns the record, so naming the field tells it nothing new.
A delivery never carries what the recipient may not receive, and nothing is silently removed.

``decision_only`` names the record's flags that the standard keeps for the gateway's decisions
alone (``FieldSpec.decision_only``, e.g. ``case.has_sealed_juvenile``): the policy decides on
the whole record, flags included (a negative-list condition reads them), but they are no part
of the delivered document, so they need not (and, being 不予共享, could not) reach the
recipient. The caller leaves them out of the content. Any other field the decision withholds
or masks still refuses the delivery with the field named.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.errors import Forbidden
from gateway.policy.decision import (
    AccessRequest,
    Outcome,
    PolicyDecisionPoint,
    RecordDecision,
    SubjectRecords,
)

__all__ = ["check_for_recipient"]


def check_for_recipient(
    pdp: PolicyDecisionPoint,
    access: AccessRequest,
    record: Mapping[str, Any],
    subjects: SubjectRecords | None = None,
    decision_only: frozenset[str] = frozenset(),
) -> RecordDecision:
    """The record's decision for the recipient, if it goes whole; else the 403 (see above)."""
    who = access.requester_agency
    decision = pdp.decide(access)
    if decision.outcome is not Outcome.ALLOW:
        raise Forbidden(
            f"{who} may not receive this {access.resource} for {access.purpose}: {decision.reason}",
            extra={"rule_ids": list(decision.rule_ids)},
        )
    verdict = pdp.filter_record(decision, access, record, subjects)
    rules = sorted({*decision.rule_ids, *verdict.rule_ids})
    if not verdict.released:
        raise Forbidden(
            f"{who} may not receive this {access.resource} record: "
            f"{verdict.reason or 'the record is withheld'}",
            extra={"rule_ids": rules},
        )
    delivered = {name: value for name, value in record.items() if name not in decision_only}
    blocked = {
        name
        for name, value in delivered.items()
        if value is not None and (name not in verdict.record or verdict.record[name] != value)
    }
    blocked |= (verdict.withheld_fields | verdict.masked_fields) & set(delivered)
    if blocked:
        fields = sorted(blocked)
        raise Forbidden(
            f"{who} may not receive field {fields[0]} of this {access.resource} record "
            f"for {access.purpose}; the delivery is refused, not stripped",
            extra={"field": fields[0], "fields": fields, "rule_ids": rules},
        )
    return verdict
