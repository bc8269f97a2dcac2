"""Frozen pydantic models of the unified sharing standard (统一标准).

Contracts:

* Every model is immutable (``frozen=True``) and rejects unknown keys (``extra="forbid"``).
  Booleans and integers are strict (``"yes"`` is not ``True``); enum-valued fields take their
  Chinese / ASCII string values as written in the YAML files.
* Intrinsic consistency of one field spec is checked by the model (e.g. a ``code`` field names a
  ``code_table``; a 不予共享 field states its ``basis``). Cross-file references (owner kind,
  code table ids, agency kinds) are checked by :func:`gateway.standard.loader.load_standard`.
* ``Standard`` lookups raise ``KeyError`` for unknown names.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterator, Mapping
from enum import StrEnum
from functools import cached_property
from typing import Annotated, Any, Self, TypeVar, cast

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    field_validator,
    model_validator,
)

from gateway.standard.delivery_kinds import DeliveryKind

__all__ = [
    "Agency",
    "AgencyKind",
    "CodeTable",
    "FieldSpec",
    "FieldType",
    "Grade",
    "Mirror",
    "Purpose",
    "ResourceType",
    "SharingClass",
    "SharingCondition",
    "Standard",
    "StandardInfo",
]

_T = TypeVar("_T")

_Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]
_Text = Annotated[str, Field(min_length=1)]
_Stage = Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9_]*$")]
_ConditionId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]*$", max_length=64)]


class Grade(StrEnum):
    """Data grade per GB/T 43697-2024 数据分类分级规则."""

    CORE = "核心"
    IMPORTANT = "重要"
    GENERAL = "一般"

    @property
    def rank(self) -> int:
        """Order for comparisons: 一般 = 1 < 重要 = 2 < 核心 = 3."""
        return _GRADE_RANK[self]


_GRADE_RANK = {Grade.GENERAL: 1, Grade.IMPORTANT: 2, Grade.CORE: 3}


class SharingClass(StrEnum):
    """Sharing class per 国发〔2016〕51号 / 政务数据共享条例.

    At field level: 无条件 = given to any requester authorised for the resource; 有条件 = given
    only where the permissions list grants the field for the purpose; 不予共享 = never leaves the
    owner through the gateway.
    """

    UNCONDITIONAL = "无条件"
    CONDITIONAL = "有条件"
    NOT_SHARED = "不予共享"


class FieldType(StrEnum):
    """Value type of a resource field (the item type when the field is a list)."""

    STRING = "string"
    TEXT = "text"
    INTEGER = "integer"
    BOOLEAN = "boolean"
    DATE = "date"
    CODE = "code"
    CITIZEN_ID = "citizen_id"
    CASE_NUMBER = "case_number"
    POLICE_CASE_NUMBER = "police_case_number"
    DIVISION = "division"
    AGENCY_CODE = "agency_code"


_STRINGY = frozenset({FieldType.STRING, FieldType.TEXT})


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", validate_by_name=True)

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy; what the ``cached_property``s derived from this model is left behind, since
        ``update`` may change what they were derived from."""
        copied = super().model_copy(update=update, deep=deep)
        for klass in type(self).__mro__:
            for name, value in vars(klass).items():
                if isinstance(value, cached_property):
                    copied.__dict__.pop(name, None)
        if isinstance(copied, Standard):
            _ = copied._index  # duplicates refused at once, as at load
        return copied


class StandardInfo(_Frozen):
    """Header of the standard (``standard.yaml``)."""

    id: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]*$")]
    title: _Text
    edition: _Text
    description: _Text


class AgencyKind(_Frozen):
    """An agency kind, e.g. ``public_security`` 公安 with agency-code prefix ``GA``."""

    code: _Name
    name: _Text
    prefix: Annotated[str, Field(pattern=r"^[A-Z]{2}$")]
    description: str = ""


class Agency(_Frozen):
    """An agency: ``code`` = kind prefix + 6 digits (e.g. ``GA640104``), GB/T 2260 ``division``.

    A court names its ``court_code`` (法院代字 in its 案号, e.g. ``宁0104``); a prison may name
    its ``stationed_procuratorate`` (派驻监所检察), a party of the cases of the convicts it holds
    for the purposes that say so (``Purpose.stationed_supervision``).
    """

    code: Annotated[str, Field(pattern=r"^[A-Z]{2}[0-9]{6}$")]
    kind: _Name
    name: _Text
    division: Annotated[str, Field(pattern=r"^[0-9]{6}$")]
    court_code: Annotated[str, Field(min_length=1, max_length=8)] | None = None
    stationed_procuratorate: Annotated[str, Field(pattern=r"^[A-Z]{2}[0-9]{6}$")] | None = None


class Purpose(_Frozen):
    """A declared purpose of use (用途); ``needs_case`` = requests must be bound to a case.

    ``stages`` are the case stages (code table ``case_stage``) the purpose is valid in: a
    request bound to a case in another stage is refused. ``legal_basis`` says why the purpose
    exists. ``stationed_supervision``: the procuratorate stationed at a prison of the case
    (派驻监所检察) is a party of the case for this purpose.
    """

    code: Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9_]*$")]
    name: _Text
    description: _Text
    needs_case: StrictBool
    stages: tuple[_Stage, ...] = Field(min_length=1)
    legal_basis: _Text
    stationed_supervision: StrictBool = False

    @field_validator("stages")
    @classmethod
    def _unique_stages(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError("a stage is listed twice")
        return value


class SharingCondition(_Frozen):
    """A 共享条件 of 有条件 fields: ``id`` is what fields and permissions (``satisfies``) name.

    ``purposes`` are the purposes under which a permission may claim to satisfy it.
    """

    id: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]*$", max_length=64)]
    name: _Text
    description: _Text
    purposes: tuple[Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9_]*$")], ...] = Field(min_length=1)


class CodeTable(_Frozen):
    """A code table: ``codes`` maps code -> Chinese label, in document order.

    ``code_pattern``, when given, is a regular expression every code must fully match.
    Supports ``code in table``.
    """

    id: _Name
    name: _Text
    source: _Text
    edition: _Text | None = None
    description: str = ""
    code_pattern: str | None = None
    codes: dict[str, str] = Field(min_length=1)

    @field_validator("code_pattern")
    @classmethod
    def _pattern_compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"invalid regular expression: {exc}") from None
        return value

    def __contains__(self, code: object) -> bool:
        return code in self.codes

    def label(self, code: str) -> str:
        """Chinese label of ``code``; ``KeyError`` if unknown."""
        return self.codes[code]


class Mirror(_Frozen):
    """A field that repeats a field of the subject another field refers to.

    ``judgment.defendant_name`` mirrors ``person.name`` via ``defendant_id``: a negative-list
    item that withholds or masks the defendant's ``name`` does the same to ``defendant_name``.
    """

    via: _Name
    field: _Name


class FieldSpec(_Frozen):
    """One field of a resource type.

    ``type`` is the value type; with ``list: true`` (attribute ``is_list``) the value is a list
    of that type. ``code_table`` is required for (and only allowed on) ``code`` fields;
    ``pattern``/``max_length`` only on ``string``/``text``; ``minimum``/``maximum`` only on
    ``integer``; ``agency_kind`` only on ``agency_code``. ``sensitive`` (PIPL 第28条) implies
    ``personal_info``. ``conditions`` (共享条件, ids of the standard's sharing conditions) are
    required for, and only allowed on, 有条件 fields: such a field is released only under a
    permission that ``satisfies`` one of them. ``basis`` (legal basis) is required for 不予共享
    fields. ``decision_only`` (only on a 不予共享 boolean): a flag the owner keeps for the
    gateway's decisions alone; it is a policy input, not part of the document a delivery
    carries (see ``delivered_fields``).

    ``party`` (on ``agency_code`` and ``case_number`` fields): the agency the value names (for a
    案号: its issuing court) handles the case of the record, so the flow makes it a party of
    the case. ``issued_by`` (on ``case_number`` fields) names the court field of the same
    record whose agency issued the 案号: the 案号's court code must be that court's.

    ``refers_to`` names the resource type whose records this field's value identifies (a
    ``person_id`` refers to ``person``, a ``case_id`` to ``case``): protection that belongs to
    that subject (a sealed person, a secret case) follows it to this record. ``mirrors``
    declares that the field repeats a field of such a subject (see :class:`Mirror`).
    """

    name: _Name
    type: FieldType
    is_list: StrictBool = Field(default=False, alias="list")
    label: _Text
    description: _Text
    code_table: _Name | None = None
    pattern: str | None = None
    max_length: Annotated[StrictInt, Field(ge=1)] | None = None
    minimum: StrictInt | None = None
    maximum: StrictInt | None = None
    agency_kind: _Name | None = None
    grade: Grade
    sharing: SharingClass
    conditions: tuple[_ConditionId, ...] = ()
    basis: _Text | None = None
    personal_info: StrictBool
    sensitive: StrictBool = False
    required: StrictBool
    filterable: StrictBool = False
    refers_to: _Name | None = None
    mirrors: Mirror | None = None
    party: StrictBool = False
    issued_by: _Name | None = None
    decision_only: StrictBool = False

    @field_validator("pattern")
    @classmethod
    def _pattern_compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"invalid regular expression: {exc}") from None
        return value

    @model_validator(mode="after")
    def _consistent(self) -> FieldSpec:
        problems: list[str] = []
        if (self.type is FieldType.CODE) != (self.code_table is not None):
            problems.append("code_table is required for, and only allowed on, type 'code'")
        if self.type not in _STRINGY and (self.pattern is not None or self.max_length is not None):
            problems.append("pattern/max_length are only allowed on string and text fields")
        if self.type is not FieldType.INTEGER and (
            self.minimum is not None or self.maximum is not None
        ):
            problems.append("minimum/maximum are only allowed on integer fields")
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            problems.append("minimum is greater than maximum")
        if self.type is not FieldType.AGENCY_CODE and self.agency_kind is not None:
            problems.append("agency_kind is only allowed on agency_code fields")
        if self.sensitive and not self.personal_info:
            problems.append("sensitive personal information must also be personal_info")
        if self.sharing is SharingClass.NOT_SHARED and self.basis is None:
            problems.append("a 不予共享 field must state its legal basis (basis)")
        if self.sharing is not SharingClass.NOT_SHARED and self.basis is not None:
            problems.append("basis is only for 不予共享 fields")
        conditional = self.sharing is SharingClass.CONDITIONAL
        if conditional != bool(self.conditions):
            problems.append(
                "a 有条件 field names the sharing conditions it may be released under "
                "(conditions: [id, …]); other fields name none"
            )
        if len(set(self.conditions)) != len(self.conditions):
            problems.append("a condition is listed twice")
        if self.party and self.type not in (FieldType.AGENCY_CODE, FieldType.CASE_NUMBER):
            problems.append("party is only for agency_code and case_number fields")
        if self.issued_by is not None and self.type is not FieldType.CASE_NUMBER:
            problems.append("issued_by is only for case_number fields")
        if self.filterable and (self.type is FieldType.TEXT or self.type is FieldType.BOOLEAN):
            problems.append("text and boolean fields cannot be filterable")
        if self.filterable and self.sharing is SharingClass.NOT_SHARED:
            problems.append("a 不予共享 field cannot be filterable")
        if self.refers_to is not None and self.type is not FieldType.STRING:
            problems.append("refers_to is only allowed on string fields (record ids)")
        if self.decision_only and not (
            self.sharing is SharingClass.NOT_SHARED and self.type is FieldType.BOOLEAN
        ):
            problems.append("decision_only is only for 不予共享 boolean fields (policy flags)")
        if self.refers_to is not None and self.mirrors is not None:
            problems.append("a field either refers to a subject or mirrors one of its fields")
        if problems:
            raise ValueError(f"field {self.name!r}: " + "; ".join(problems))
        return self


class ResourceType(_Frozen):
    """A resource type (e.g. ``case``): owner agency kind, id field and ordered fields.

    Field names are unique; ``id_field`` names a required, non-list field.
    """

    name: _Name
    label: _Text
    owner: _Name
    id_field: _Name
    description: _Text
    fields: tuple[FieldSpec, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_fields(self) -> ResourceType:
        seen: set[str] = set()
        for spec in self.fields:
            if spec.name in seen:
                raise ValueError(f"duplicate field {spec.name!r}")
            seen.add(spec.name)
        if self.id_field not in seen:
            raise ValueError(f"id_field {self.id_field!r} is not a field of {self.name!r}")
        return self

    # A cached property, not a ``PrivateAttr``: pydantic's private-attribute read raises and
    # catches an AttributeError on every access (~2.5 µs), and these lookups are on every
    # request's path many times (issue 18). The value sits in the instance's ``__dict__``;
    # pydantic ignores it for dumps and compares only fields.
    @cached_property
    def _by_name(self) -> dict[str, FieldSpec]:
        return {spec.name: spec for spec in self.fields}

    def field(self, name: str) -> FieldSpec:
        """The field called ``name``; ``KeyError`` if there is none."""
        return self._by_name[name]

    def has_field(self, name: str) -> bool:
        """True if the resource type has a field called ``name``."""
        return name in self._by_name

    @cached_property
    def field_names(self) -> tuple[str, ...]:
        """Field names in document order."""
        return tuple(spec.name for spec in self.fields)

    @cached_property
    def filterable_fields(self) -> tuple[str, ...]:
        """Names of fields usable as request filters."""
        return tuple(spec.name for spec in self.fields if spec.filterable)

    @cached_property
    def decision_only_fields(self) -> frozenset[str]:
        """Flags the gateway decides by that are no part of a delivered document."""
        return frozenset(spec.name for spec in self.fields if spec.decision_only)

    @cached_property
    def references(self) -> tuple[FieldSpec, ...]:
        """Fields whose value identifies a record of another resource (``refers_to``)."""
        return tuple(spec for spec in self.fields if spec.refers_to is not None)

    @cached_property
    def grade(self) -> Grade:
        """Highest grade of any field (the resource's overall grade)."""
        return max((spec.grade for spec in self.fields), key=lambda g: g.rank)


class Standard(_Frozen):
    """The loaded standard: header, agencies, purposes, code tables, resource types, deliveries.

    ``version`` is ``"sha256:<hex>"`` over the canonical contents of the files it was loaded
    from (see ``load_standard``). Tuples keep document order (files sorted by name).
    """

    info: StandardInfo
    version: str
    agency_kinds: tuple[AgencyKind, ...]
    agencies: tuple[Agency, ...]
    purposes: tuple[Purpose, ...]
    code_tables: tuple[CodeTable, ...]
    resources: tuple[ResourceType, ...]
    conditions: tuple[SharingCondition, ...] = ()
    deliveries: tuple[DeliveryKind, ...] = ()

    def model_post_init(self, context: Any, /) -> None:
        # Built (and duplicates refused) when the standard is loaded, not at first use.
        _ = self._index

    # A cached property, not ``PrivateAttr``s: see ResourceType._by_name.
    @cached_property
    def _index(self) -> _StandardIndex:
        return _StandardIndex(
            kinds=_index(self.agency_kinds, lambda k: k.code, "agency kind"),
            agencies=_index(self.agencies, lambda a: a.code, "agency"),
            purposes=_index(self.purposes, lambda p: p.code, "purpose"),
            tables=_index(self.code_tables, lambda t: t.id, "code table"),
            resources=_index(self.resources, lambda r: r.name, "resource type"),
            conditions=_index(self.conditions, lambda c: c.id, "sharing condition"),
            courts={a.court_code: a for a in self.agencies if a.court_code is not None},
            deliveries=_index(self.deliveries, lambda d: d.code, "delivery kind"),
        )

    def agency_kind(self, code: str) -> AgencyKind:
        """Agency kind by code (``public_security`` ...); ``KeyError`` if unknown."""
        return self._index.kinds[code]

    def agency(self, code: str) -> Agency:
        """Agency by code (``GA640104`` ...); ``KeyError`` if unknown."""
        return self._index.agencies[code]

    def purpose(self, code: str) -> Purpose:
        """Purpose by code (``ARREST_REVIEW`` ...); ``KeyError`` if unknown."""
        return self._index.purposes[code]

    def code_table(self, table_id: str) -> CodeTable:
        """Code table by id (``sex``, ``ethnicity``, ``division`` ...); ``KeyError`` if unknown."""
        return self._index.tables[table_id]

    def resource(self, name: str) -> ResourceType:
        """Resource type by name (``case``, ``person`` ...); ``KeyError`` if unknown."""
        return self._index.resources[name]

    def condition(self, condition_id: str) -> SharingCondition:
        """Sharing condition by id; ``KeyError`` if unknown."""
        return self._index.conditions[condition_id]

    def delivery_kind(self, code: str) -> DeliveryKind:
        """Delivery kind by code (``arrest_request`` ...); ``KeyError`` if unknown."""
        return self._index.deliveries[code]

    def court_by_code(self, court_code: str) -> Agency | None:
        """The court agency whose 案号 court code (法院代字) is ``court_code``, if any."""
        return self._index.courts.get(court_code)

    def has_resource(self, name: str) -> bool:
        """True if ``name`` is a resource type of the standard."""
        return name in self._index.resources

    def agencies_of_kind(self, kind: str) -> Iterator[Agency]:
        """Agencies whose kind is ``kind``, in document order."""
        return (a for a in self.agencies if a.kind == kind)

    def derived(self, key: str, build: Callable[[Standard], _T]) -> _T:
        """Memoised value derived from this immutable standard (e.g. compiled record checkers).

        ``build(self)`` runs once per ``key``; later calls return the stored value.
        """
        derived = self._index.derived
        try:
            return cast(_T, derived[key])
        except KeyError:
            value = build(self)
            derived[key] = value
            return value


@dataclasses.dataclass(frozen=True, slots=True)
class _StandardIndex:
    """The standard's lookups by code, and what is derived from it (``Standard.derived``)."""

    kinds: dict[str, AgencyKind]
    agencies: dict[str, Agency]
    purposes: dict[str, Purpose]
    tables: dict[str, CodeTable]
    resources: dict[str, ResourceType]
    conditions: dict[str, SharingCondition]
    courts: dict[str, Agency]
    deliveries: dict[str, DeliveryKind]
    derived: dict[str, object] = dataclasses.field(default_factory=dict)


def _index(items: tuple[_T, ...], key: Callable[[_T], str], what: str) -> dict[str, _T]:
    index: dict[str, _T] = {}
    for item in items:
        k = key(item)
        if k in index:
            raise ValueError(f"duplicate {what} {k!r}")
        index[k] = item
    return index
