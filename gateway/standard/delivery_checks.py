"""Cross-file checks of the delivery kinds (``deliveries/<code>.yaml``) of the standard.

Contract of :func:`check_delivery_kind`: it appends one located :class:`StandardProblem` per
broken reference and returns nothing. Checked: sender, recipient and copy agency kinds exist;
the carried ``resource`` exists; each purpose (a sender's or a recipient's) exists and is bound
to a case (``needs_case``);
``on_accept_stage`` is a code of table
``case_stage``; a limit ``counted_from`` a record field names a single ``date`` field of the
carried resource.
"""

from __future__ import annotations

from collections.abc import Container, Mapping

from gateway.standard._yaml import YamlDocument, YamlPath
from gateway.standard.delivery_kinds import DeliveryKind, TimeLimit
from gateway.standard.errors import StandardProblem
from gateway.standard.model import FieldType, Purpose, ResourceType

__all__ = ["check_delivery_kind"]


def _limit(
    doc: YamlDocument,
    where: YamlPath,
    limit: TimeLimit,
    resource: ResourceType | None,
    problems: list[StandardProblem],
) -> None:
    field = limit.counted_from
    if field == "received" or resource is None:
        return
    spec = resource.field(field) if resource.has_field(field) else None
    if spec is None or spec.type is not FieldType.DATE or spec.is_list:
        problems.append(
            doc.problem(
                (*where, "counted_from"),
                f"counted_from {field!r} is not a single date field of {resource.name!r}",
            )
        )


def check_delivery_kind(
    doc: YamlDocument,
    kind: DeliveryKind,
    *,
    agency_kinds: Container[str],
    resources: Mapping[str, ResourceType],
    purposes: Mapping[str, Purpose],
    stages: Container[str] | None,
    problems: list[StandardProblem],
) -> None:
    """Check the references of ``kind`` (see module docstring); problems go to ``problems``."""
    for key, values in (
        ("senders", kind.senders),
        ("recipients", kind.recipients),
        ("copies", kind.copies),
    ):
        for j, value in enumerate(values):
            if value not in agency_kinds:
                problems.append(doc.problem((key, j), f"unknown agency kind {value!r}"))
    resource = resources.get(kind.resource)
    if resource is None:
        problems.append(doc.problem(("resource",), f"unknown resource type {kind.resource!r}"))
    for key, mapping in (
        ("purposes", kind.purposes),
        ("recipient_purposes", kind.recipient_purposes),
    ):
        for agency_kind, code in mapping.items():
            purpose = purposes.get(code)
            if purpose is None:
                problems.append(doc.problem((key, agency_kind), f"unknown purpose {code!r}"))
            elif not purpose.needs_case:
                problems.append(
                    doc.problem((key, agency_kind), f"purpose {code!r} is not bound to a case")
                )
    stage = kind.on_accept_stage
    if stage is not None and stages is not None and stage not in stages:
        problems.append(
            doc.problem(("on_accept_stage",), f"stage {stage!r} is not in code table 'case_stage'")
        )
    if kind.time_limit is not None:
        _limit(doc, ("time_limit",), kind.time_limit, resource, problems)
    for i, limit in enumerate(kind.related_limits):
        _limit(doc, ("related_limits", i), limit, resource, problems)
