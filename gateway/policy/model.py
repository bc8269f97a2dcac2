"""Pydantic models of the policy files: permissions list (权限清单) and negative list (负面清单).

Contracts:

* Models are immutable and reject unknown keys; booleans and integers are strict.
* Intrinsic consistency is checked here (a grantee names exactly one of ``kind``/``agency``; a
  ``mask_fields`` item has a ``mask``; ``conceal`` only on ``deny_request``/``withhold_record`` …).
  Names that must exist in the standard (resources, fields, purposes, agencies, kinds) and CEL
  conditions are checked by :func:`gateway.policy.loader.load_policy_set`.
* Dates are ``YYYY-MM-DD``; validity windows are inclusive and read in China Standard Time.

File shapes (YAML)::

    # policies/permissions/<any>.yaml
    permissions:
      - id: jc-arrest-review-person
        grantee: {kind: procuratorate}        # or {agency: JC640104}; optional role: <text>
        resource: person
        fields: [person_id, name, id_number]  # or "*" (every field not 不予共享)
        purposes: [ARREST_REVIEW]
        condition: 'request.case_stage == "ARREST_REVIEW"'   # optional CEL
        valid_from: 2024-01-01                # optional
        valid_until: 2027-12-31               # optional
        legal_basis: 刑事诉讼法 第87条 …
        satisfies: [case-handling]            # sharing conditions this rule satisfies
        case_binding: true                    # true | false | request | supervised
        reach:                                # only with case_binding: request
          kind: bound_case_persons            # records about the bound case's own persons
          reason: 前科审查：…                   # why records of other cases are needed

    # policies/negative_list/<any>.yaml
    negative_list:
      - id: nl-sealed-juvenile-record
        resource: person                      # a resource, a list of resources, or "*"
        condition: record.juvenile_record_sealed == true
        action: withhold_record               # deny_request | withhold_record |
                                              # withhold_fields | mask_fields
        conceal: true                         # neither confirm nor deny
        legal_basis: 刑事诉讼法 第286条 …
        exceptions:
          - id: nl-sealed-juvenile-record.judicial
            condition: request.requester_kind in ["court", "procuratorate"]
            legal_basis: 刑事诉讼法 第286条 …（司法机关为办案需要）
            valid_until: 2030-12-31
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, model_validator

__all__ = [
    "ALL_RESOURCES",
    "Action",
    "CaseBinding",
    "DeliveryPermission",
    "Grantee",
    "Mask",
    "MaskKind",
    "NegativeException",
    "NegativeItem",
    "NegativeListFile",
    "Permission",
    "PermissionsFile",
    "Reach",
    "ReachKind",
    "RuleId",
]

#: ``resource: "*"`` on a negative-list item covers every resource type.
ALL_RESOURCES = "*"

RuleId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]*$", max_length=128)]
_Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]
_PurposeCode = Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9_]*$")]
_AgencyCode = Annotated[str, Field(pattern=r"^[A-Z]{2}[0-9]{6}$")]
_Text = Annotated[str, Field(min_length=1)]
_Cel = Annotated[str, Field(min_length=1, max_length=4000)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CaseBinding(StrEnum):
    """How a permission ties a request to a case.

    ``record`` (YAML ``true``): the request must name a case whose ``handling_agencies`` include
    the requester, and every record must belong to that case. ``request`` (YAML ``request``):
    the request must name such a case, but records may come from other cases (e.g. prior
    judgments for 前科审查). ``supervised`` (YAML ``supervised``, 挂牌督办): the request must
    name an existing case and carry an approval reference (``X-Approval-Reference``); the
    requester need not handle the case, and every record must belong to it. ``none`` (YAML
    ``false``): no case needed.
    """

    RECORD = "record"
    REQUEST = "request"
    SUPERVISED = "supervised"
    NONE = "none"


class ReachKind(StrEnum):
    """Which records outside the bound case a ``case_binding: request`` permission reaches.

    ``bound_case_persons``: records about the bound case's own persons (the same 公民身份号码)
    in other cases, e.g. their earlier judgments for 前科审查. Every person the record refers
    to must be one of them.
    """

    BOUND_CASE_PERSONS = "bound_case_persons"


class Reach(_Frozen):
    """The records outside the bound case a permission reaches, and why."""

    kind: ReachKind
    reason: _Text


class Grantee(_Frozen):
    """Who a permission is for: an agency kind or one agency, optionally one role."""

    kind: _Name | None = None
    agency: _AgencyCode | None = None
    role: _Text | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Grantee:
        if (self.kind is None) == (self.agency is None):
            raise ValueError("grantee needs exactly one of 'kind' or 'agency'")
        return self

    @property
    def key(self) -> str:
        """Index key: ``K:<kind>`` or ``A:<agency code>``."""
        return f"K:{self.kind}" if self.kind is not None else f"A:{self.agency}"


class _Window(_Frozen):
    valid_from: date | None = None
    valid_until: date | None = None

    def in_force(self, day: date) -> bool:
        """True if ``day`` is inside the (inclusive) validity window."""
        if self.valid_from is not None and day < self.valid_from:
            return False
        return self.valid_until is None or day <= self.valid_until


class Permission(_Window):
    """One entry of the permissions list (see module docstring)."""

    id: RuleId
    description: str = ""
    grantee: Grantee
    resource: _Name
    fields: Literal["*"] | tuple[_Name, ...]
    purposes: tuple[_PurposeCode, ...]
    condition: _Cel | None = None
    legal_basis: _Text
    satisfies: tuple[Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]*$")], ...] = ()
    case_binding: StrictBool | Literal["request", "supervised"] | None = None
    reach: Reach | None = None

    @model_validator(mode="after")
    def _reach_with_request_binding(self) -> Permission:
        if self.case_binding == "request" and self.reach is None:
            raise ValueError(
                "case_binding 'request' needs 'reach': say which records of other cases the "
                "permission reaches, and why"
            )
        if self.reach is not None and self.case_binding != "request":
            raise ValueError("'reach' is only for case_binding 'request'")
        return self

    def binding(self, needs_case: bool) -> CaseBinding:
        """Effective binding; unset defaults to ``record`` when a purpose needs a case."""
        if self.case_binding is None:
            return CaseBinding.RECORD if needs_case else CaseBinding.NONE
        if self.case_binding == "request":
            return CaseBinding.REQUEST
        if self.case_binding == "supervised":
            return CaseBinding.SUPERVISED
        return CaseBinding.RECORD if self.case_binding else CaseBinding.NONE


class Action(StrEnum):
    """What a negative-list item does when it applies."""

    DENY_REQUEST = "deny_request"
    WITHHOLD_RECORD = "withhold_record"
    WITHHOLD_FIELDS = "withhold_fields"
    MASK_FIELDS = "mask_fields"


class MaskKind(StrEnum):
    """Masks, strongest first: ``redact`` > ``hash`` > ``year_only`` > ``keep``."""

    REDACT = "redact"
    HASH = "hash"
    YEAR_ONLY = "year_only"
    KEEP = "keep"


class Mask(_Frozen):
    """A mask: ``keep`` uses ``first``/``last``; ``hash`` uses ``length`` (hex characters)."""

    kind: MaskKind
    first: Annotated[StrictInt, Field(ge=0, le=64)] | None = None
    last: Annotated[StrictInt, Field(ge=0, le=64)] | None = None
    length: Annotated[StrictInt, Field(ge=8, le=64)] | None = None

    @model_validator(mode="after")
    def _params(self) -> Mask:
        if self.kind is MaskKind.KEEP:
            if self.first is None and self.last is None:
                raise ValueError("a 'keep' mask needs 'first' and/or 'last'")
        elif self.first is not None or self.last is not None:
            raise ValueError("'first'/'last' are only for the 'keep' mask")
        if self.kind is not MaskKind.HASH and self.length is not None:
            raise ValueError("'length' is only for the 'hash' mask")
        return self


class NegativeException(_Window):
    """An exception lifting its item while in force and while its ``condition`` holds."""

    id: RuleId
    description: str = ""
    condition: _Cel
    legal_basis: _Text


class NegativeItem(_Frozen):
    """One entry of the negative list (see module docstring)."""

    id: RuleId
    description: str = ""
    resource: Literal["*"] | _Name | tuple[_Name, ...]
    fields: tuple[_Name, ...] | None = None
    condition: _Cel | None = None
    action: Action
    mask: Mask | None = None
    conceal: StrictBool = False
    legal_basis: _Text
    exceptions: tuple[NegativeException, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> NegativeItem:
        problems: list[str] = []
        field_action = self.action in (Action.WITHHOLD_FIELDS, Action.MASK_FIELDS)
        if field_action and not self.fields:
            problems.append(f"action {self.action.value!r} needs a non-empty 'fields' list")
        if not field_action and self.fields is not None:
            problems.append(f"'fields' is not allowed with action {self.action.value!r}")
        if (self.action is Action.MASK_FIELDS) != (self.mask is not None):
            problems.append("'mask' is required for, and only allowed with, action 'mask_fields'")
        if self.conceal and field_action:
            problems.append("'conceal' is only for actions 'deny_request' and 'withhold_record'")
        if isinstance(self.resource, tuple) and not self.resource:
            problems.append("'resource' list is empty")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def resources(self) -> tuple[str, ...]:
        """Covered resource names, or ``("*",)`` for every resource."""
        return (self.resource,) if isinstance(self.resource, str) else self.resource


class DeliveryPermission(_Frozen):
    """A delivery rule (协同办案): agencies of a ``senders`` kind may send the delivery
    ``kinds`` to agencies of a ``recipients`` kind. Names are checked against the standard's
    agency kinds and delivery kinds by the loader; a rule may not allow a sender or recipient
    kind the delivery kind does not declare, nor a recipient kind it declares no purpose for.
    """

    id: RuleId
    description: str = ""
    senders: tuple[_Name, ...] = Field(min_length=1)
    recipients: tuple[_Name, ...] = Field(min_length=1)
    kinds: tuple[_Name, ...] = Field(min_length=1)
    legal_basis: _Text


class PermissionsFile(_Frozen):
    """A file in ``policies/permissions/``: read permissions and/or delivery rules."""

    description: str = ""
    permissions: tuple[Permission, ...] = ()
    deliveries: tuple[DeliveryPermission, ...] = ()


class NegativeListFile(_Frozen):
    """A file in ``policies/negative_list/``."""

    description: str = ""
    negative_list: tuple[NegativeItem, ...]
