"""The declarative mapping engine: native records ⇄ the standard, compiled once at load.

A field mapping is either a native path (``"XM"``, ``"AJFSD.XZQHDM"``) or a small
table of rules: ``from`` (path), ``codes`` (native → standard code values),
``date_format`` (strptime pattern, ``iso`` or ``iso-datetime``), ``true_values`` /
``false_values``, ``split`` (a separator for lists), ``type`` and ``strip``.

Values that do not translate are passed through unchanged (an unknown code stays
the native code) so that standard validation names the field and refuses the
record, instead of the mapping silently guessing. A value that cannot be parsed
at all (a date that is not a date) raises :class:`MappingError`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from adapters.base import MappingError, StandardRecord
from adapters.config import FieldMapConfig, ResourceMapConfig

__all__ = ["CompiledResourceMap", "compile_resource_map", "get_path"]

_MISSING = object()

Converter = Callable[[Any], Any]


def get_path(data: Any, path: str) -> Any:
    """Follow a dotted path through nested mappings; a missing step gives ``_MISSING``."""
    if not path:
        return data
    current = data
    for step in path.split("."):
        if not isinstance(current, Mapping) or step not in current:
            return _MISSING
        current = current[step]
    return current


def _date_parser(fmt: str) -> Converter:
    def parse(value: Any) -> str:
        text = str(value).strip()
        if fmt == "iso":
            return date.fromisoformat(text).isoformat()
        if fmt == "iso-datetime":
            return datetime.fromisoformat(text).date().isoformat()
        return datetime.strptime(text, fmt).date().isoformat()

    return parse


def _date_formatter(fmt: str) -> Converter:
    def render(value: str) -> str:
        parsed = date.fromisoformat(value)
        if fmt in ("iso", "iso-datetime"):
            return parsed.isoformat()
        return parsed.strftime(fmt)

    return render


def _to_int(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return value


def _to_str(value: Any) -> Any:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return value


@dataclass(frozen=True)
class _CompiledField:
    name: str
    source: str
    convert: Converter
    to_native: Converter


def _compile_field(name: str, spec: FieldMapConfig) -> _CompiledField:
    steps: list[Converter] = []
    reverse: list[Converter] = []
    if spec.strip:
        steps.append(lambda v: v.strip() if isinstance(v, str) else v)
    if spec.split is not None:
        separator = spec.split
        steps.append(
            lambda v: (
                [p.strip() for p in v.split(separator) if p.strip()] if isinstance(v, str) else v
            )
        )
    if spec.codes is not None:
        codes = dict(spec.codes)
        inverse = {standard: native for native, standard in codes.items()}

        def translate(value: Any) -> Any:
            if isinstance(value, list):
                return [codes.get(str(v), v) for v in value]
            return codes.get(str(value), value)

        steps.append(translate)
        reverse.append(lambda v: inverse.get(v, v))
    if spec.date_format is not None:
        steps.append(_date_parser(spec.date_format))
        reverse.append(_date_formatter(spec.date_format))
    if spec.true_values is not None or spec.false_values is not None:
        truthy = set(spec.true_values or [])
        falsy = set(spec.false_values or [])

        def to_bool(value: Any) -> Any:
            text = str(value).strip()
            if text in truthy:
                return True
            if text in falsy:
                return False
            return value  # left for validation to refuse

        steps.append(to_bool)
    if spec.type == "integer":
        steps.append(
            lambda v: int(v) if isinstance(v, str) and v.strip().lstrip("-").isdigit() else v
        )
    elif spec.type == "string":
        steps.append(
            lambda v: str(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v
        )

    def convert(value: Any) -> Any:
        for step in steps:
            value = step(value)
        return value

    def to_native(value: Any) -> Any:
        for step in reversed(reverse):
            value = step(value)
        return value

    return _CompiledField(name, spec.source, convert, to_native)


class CompiledResourceMap:
    """One resource's mapping, compiled: ``to_standard(native)`` and native filter values."""

    def __init__(self, agency: str, resource: str, config: ResourceMapConfig) -> None:
        self.agency = agency
        self.resource = resource
        self.config = config
        self.fields: list[_CompiledField] = []
        for name, spec in config.fields.items():
            field_spec = spec if isinstance(spec, FieldMapConfig) else FieldMapConfig(source=spec)
            self.fields.append(_compile_field(name, field_spec))
        self._by_name = {f.name: f for f in self.fields}

    def to_standard(self, native: Any) -> StandardRecord:
        if not isinstance(native, Mapping):
            raise MappingError(self.agency, f"{self.resource}: a record is not an object")
        record: StandardRecord = {}
        for compiled in self.fields:
            raw = get_path(native, compiled.source)
            if raw is _MISSING or raw is None or raw == "":
                continue
            try:
                record[compiled.name] = compiled.convert(raw)
            except (ValueError, TypeError) as exc:
                raise MappingError(
                    self.agency,
                    f"{self.resource}.{compiled.name}: cannot read native "
                    f"{compiled.source}={raw!r}: {exc}",
                    field_name=compiled.name,
                ) from exc
        return record

    def native_filter(self, field_name: str, value: str) -> str:
        """A standard filter value rendered as the agency expects it (codes, date format)."""
        compiled = self._by_name.get(field_name)
        if compiled is None:
            return value
        return str(compiled.to_native(value))


def compile_resource_map(
    agency: str, resource: str, config: ResourceMapConfig
) -> CompiledResourceMap:
    return CompiledResourceMap(agency, resource, config)
