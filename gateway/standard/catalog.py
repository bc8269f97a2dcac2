"""Public catalog document of the standard (served as ``GET /v1/catalog``).

Contract: :func:`catalog_document` returns a fresh, JSON-serialisable ``dict`` (only ``dict``,
``list``, ``str``, ``int``, ``bool`` and ``None``) describing what agency developers code
against. It lists every resource type and field, including 不予共享 fields (with their legal
basis) — a catalogue lists what exists; access decisions are made elsewhere. Shape::

    {"standard": {"id", "title", "edition", "description", "version"},
     "agency_kinds": [{"code", "name", "prefix", "description"}],
     "agencies": [{"code", "kind", "name", "division", "court_code"?,
                   "stationed_procuratorate"?}],
     "purposes": [{"code", "name", "description", "needs_case", "stages", "legal_basis",
                   "stationed_supervision"}],
     "conditions": [{"id", "name", "description", "purposes"}],
     "resources": [{"name", "label", "owner", "id_field", "description", "grade",
                    "fields": [{"name", "label", "description", "type", "list", "code_table",
                                "pattern", "max_length", "minimum", "maximum", "agency_kind",
                                "grade", "sharing", "condition", "conditions", "basis",
                                "personal_info", "sensitive", "required", "filterable",
                                "refers_to", "mirrors": {"via", "field"}, "party",
                                "issued_by", "decision_only"}]}],
     "code_tables": [{"id", "name", "source", "edition"?, "description", "codes": {code: label}}]}

Optional field keys (``code_table`` ... ``basis``, ``refers_to``, ``mirrors``, ``issued_by``)
are present only when set; ``party`` and ``decision_only`` only when true. A 有条件 field has
``conditions`` (the ids of its sharing conditions) and ``condition`` (their names, as one text).
"""

from __future__ import annotations

from gateway.standard.model import Agency, CodeTable, FieldSpec, ResourceType, Standard

__all__ = ["catalog_document"]

_OPTIONAL = (
    "code_table",
    "pattern",
    "max_length",
    "minimum",
    "maximum",
    "agency_kind",
    "basis",
    "refers_to",
    "issued_by",
)


def _field(standard: Standard, spec: FieldSpec) -> dict[str, object]:
    out: dict[str, object] = {
        "name": spec.name,
        "label": spec.label,
        "description": spec.description,
        "type": spec.type.value,
        "list": spec.is_list,
    }
    for key in _OPTIONAL:
        value = getattr(spec, key)
        if value is not None:
            out[key] = value
    if spec.conditions:
        out["condition"] = "；".join(standard.condition(c).name for c in spec.conditions)
        out["conditions"] = list(spec.conditions)
    out.update(
        grade=spec.grade.value,
        sharing=spec.sharing.value,
        personal_info=spec.personal_info,
        sensitive=spec.sensitive,
        required=spec.required,
        filterable=spec.filterable,
    )
    if spec.mirrors is not None:
        out["mirrors"] = {"via": spec.mirrors.via, "field": spec.mirrors.field}
    if spec.party:
        out["party"] = True
    if spec.decision_only:
        out["decision_only"] = True
    return out


def _agency(agency: Agency) -> dict[str, object]:
    out: dict[str, object] = {
        "code": agency.code,
        "kind": agency.kind,
        "name": agency.name,
        "division": agency.division,
    }
    if agency.court_code is not None:
        out["court_code"] = agency.court_code
    if agency.stationed_procuratorate is not None:
        out["stationed_procuratorate"] = agency.stationed_procuratorate
    return out


def _table(table: CodeTable) -> dict[str, object]:
    out: dict[str, object] = {"id": table.id, "name": table.name, "source": table.source}
    if table.edition is not None:
        out["edition"] = table.edition
    out.update(description=table.description, codes=dict(table.codes))
    return out


def _resource(standard: Standard, resource: ResourceType) -> dict[str, object]:
    return {
        "name": resource.name,
        "label": resource.label,
        "owner": resource.owner,
        "id_field": resource.id_field,
        "description": resource.description,
        "grade": resource.grade.value,
        "fields": [_field(standard, spec) for spec in resource.fields],
    }


def catalog_document(standard: Standard) -> dict[str, object]:
    """Render the public catalog of ``standard`` (see module docstring for the shape)."""
    info = standard.info
    return {
        "standard": {
            "id": info.id,
            "title": info.title,
            "edition": info.edition,
            "description": info.description,
            "version": standard.version,
        },
        "agency_kinds": [
            {"code": k.code, "name": k.name, "prefix": k.prefix, "description": k.description}
            for k in standard.agency_kinds
        ],
        "agencies": [_agency(a) for a in standard.agencies],
        "purposes": [
            {
                "code": p.code,
                "name": p.name,
                "description": p.description,
                "needs_case": p.needs_case,
                "stages": list(p.stages),
                "legal_basis": p.legal_basis,
                "stationed_supervision": p.stationed_supervision,
            }
            for p in standard.purposes
        ],
        "conditions": [
            {"id": c.id, "name": c.name, "description": c.description, "purposes": list(c.purposes)}
            for c in standard.conditions
        ],
        "resources": [_resource(standard, r) for r in standard.resources],
        "code_tables": [_table(t) for t in standard.code_tables],
    }
