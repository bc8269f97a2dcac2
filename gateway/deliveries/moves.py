"""The case as a delivery leaves it for its recipient: the stage it moves to, the party it makes.

A delivery is a step of the procedure, not a look-up: 移送审查起诉 is what puts a case before the
procuratorate (刑事诉讼法 第162条第1款), 提起公诉 what puts it before the court (第176条第1款).
Until the recipient's system records the step, the case's owner still reports the stage before
it and, for a court that never saw the case, no such party. Deciding the content against that
snapshot would refuse every step that moves a case on, for want of the step itself.

Contract of :func:`as_received`, given the case as the owner's system (and the flow) report it,
the delivery's kind, its recipient, the resource type it carries and the delivered record:

* **Only a step that moves the case.** All this applies to a kind with ``on_accept_stage``
  (the steps that hand a case to the next agency), and only while the case is not yet at that
  stage: once it is, the step has been taken, and its agencies are those the case's systems
  report. Any other delivery is decided on the case as reported, unchanged.
* **Party by the record.** The recipient is added to the case's handling agencies only if the
  delivered record itself names it in a field the standard marks ``party: true`` (an
  ``agency_code`` of the recipient's kind or of any kind, or a 案号 whose issuing court is the
  recipient), or, for a case record, in its ``handling_agencies``. That is the rule by which
  :class:`gateway.exchange.parties.CaseParties` already makes an agency a party from a record
  of the flow; the delivered record is such a record, by an agency that handles the case (the
  caller checks that first). No other agency becomes anything.
* **Stage by the kind.** The case is decided as at ``on_accept_stage``, the stage the step
  puts it in (and nothing else about the case changes).
* Nothing is stored: the result decides this delivery's content for its recipient and is
  dropped. Later reads see the case as the owner's system then reports it.

:func:`recipient_mismatch` is the consistency check that comes with it: a record whose party
fields name agencies of the recipient's kind but not the recipient (a 起诉意见书 naming another
procuratorate) is refused (422, the field named) rather than delivered to someone it does not
name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from gateway.exchange.parties import string_values
from gateway.policy.decision import CaseContext
from gateway.standard import Agency, FieldType, ResourceType, Standard, parse_case_number
from gateway.standard.delivery_kinds import DeliveryKind

__all__ = ["as_received", "named_agencies", "recipient_mismatch"]

_CASE = "case"
_HANDLING = "handling_agencies"


def named_agencies(
    standard: Standard, resource: ResourceType, record: Mapping[str, Any]
) -> dict[str, set[str]]:
    """Agency code → the record's fields that name it as a party of its case."""
    named: dict[str, set[str]] = {}
    fields = [f for f in resource.fields if f.party]
    for spec in fields:
        for value in string_values(record.get(spec.name)):
            code: str | None = None
            if spec.type is FieldType.CASE_NUMBER:
                try:
                    court = standard.court_by_code(parse_case_number(value).court_code)
                except ValueError:
                    court = None
                code = None if court is None else court.code
            elif spec.type is FieldType.AGENCY_CODE:
                try:
                    agency = standard.agency(value)
                except KeyError:
                    continue
                if spec.agency_kind in (None, agency.kind):
                    code = agency.code
            if code is not None:
                named.setdefault(code, set()).add(spec.name)
    if resource.name == _CASE:
        for value in string_values(record.get(_HANDLING)):
            named.setdefault(value, set()).add(_HANDLING)
    return named


def recipient_mismatch(
    standard: Standard, resource: ResourceType, record: Mapping[str, Any], recipient: Agency
) -> str | None:
    """The party field naming only other agencies of the recipient's kind, if any (see above)."""
    if resource.name == _CASE:
        return None  # a case names every agency that handles it, not one addressee
    named = named_agencies(standard, resource, record)
    if recipient.code in named:
        return None
    for code in sorted(named):
        try:
            kind = standard.agency(code).kind
        except KeyError:
            continue
        if kind == recipient.kind:
            return sorted(named[code])[0]
    return None


def as_received(
    standard: Standard,
    case: CaseContext,
    kind: DeliveryKind,
    recipient: Agency,
    resource: ResourceType,
    record: Mapping[str, Any] | None,
) -> CaseContext:
    """``case`` as this delivery leaves it for ``recipient`` (module docstring).

    ``record`` None: the record is not known yet (a ``record_id`` still to be fetched); the
    recipient is taken as named, for the question whether it may receive such a record at all.
    The fetched record is decided again with its own parties before anything is delivered.
    """
    stage = kind.on_accept_stage
    if stage is None or stage == case.stage:
        return case
    named = record is None or recipient.code in named_agencies(standard, resource, record)
    agencies = case.handling_agencies | {recipient.code} if named else case.handling_agencies
    subject: dict[str, Any] | None = None
    if case.record is not None:
        subject = {**case.record, "stage": stage, _HANDLING: sorted(agencies)}
    return replace(case, handling_agencies=frozenset(agencies), stage=stage, record=subject)
