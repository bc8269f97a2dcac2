"""Public catalog document of the standard (served as ``GET /v1/catalog``).

Contract: :func:`catalog_document` returns a fresh, JSON-serialisable ``dict`` (only ``dict``,
``list``, ``str``, ``int``, ``bool`` and ``None``) describing what agency developers code
against. It lists every resource type and field, including 不予共享 fields (with their legal
basis) — a catalogue lists what exists; access decisions are made elsewhere. Shape::

    {"standard": {"id", "title", "edition", "description", "version"},
     "agency_kinds": [{"code", "name", "prefix", "description"}],
     "agencies": [{"code", "kind", "name", "division"}],
     "purposes": [{"code", "name", "description", "needs_case"}],
     "resources": [{"name", "label", "owner", "id_field", "description", "grade",
                    "fields": [{"name", "label", "description", "type", "list", "code_table",
                                "pattern", "max_length", "minimum", "maximum", "agency_kind",
                                "grade", "sharing", "condition", "basis", "personal_info",
                                "sensitive", "required", "filterable", "refers_to",
                                "mirrors": {"via", "field"}}]}],
     "code_tables": [{"id", "name", "source", "description", "codes": {code: label}}]}

Optional field keys (``code_table`` ... ``basis``, ``refers_to``, ``mirrors``) are present only
when set.
"""

from __future__ import annotations

from gateway.standard.model import FieldSpec, ResourceType, Standard

__all__ = ["catalog_document"]

_OPTIONAL = (
    "code_table",
    "pattern",
    "max_length",
    "minimum",
    "maximum",
    "agency_kind",
    "condition",
    "basis",
    "refers_to",
)


def _field(spec: FieldSpec) -> dict[str, object]:
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
    return out


def _resource(resource: ResourceType) -> dict[str, object]:
    return {
        "name": resource.name,
        "label": resource.label,
        "owner": resource.owner,
        "id_field": resource.id_field,
        "description": resource.description,
        "grade": resource.grade.value,
        "fields": [_field(spec) for spec in resource.fields],
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
        "agencies": [
            {"code": a.code, "kind": a.kind, "name": a.name, "division": a.division}
            for a in standard.agencies
        ],
        "purposes": [
            {
                "code": p.code,
                "name": p.name,
                "description": p.description,
                "needs_case": p.needs_case,
            }
            for p in standard.purposes
        ],
        "resources": [_resource(r) for r in standard.resources],
        "code_tables": [
            {
                "id": t.id,
                "name": t.name,
                "source": t.source,
                "description": t.description,
                "codes": dict(t.codes),
            }
            for t in standard.code_tables
        ],
    }
