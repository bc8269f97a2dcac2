"""Load the unified sharing standard from ``policies/standard/``.

Directory layout (anything else ending in ``.yaml``/``.yml`` is an error; dot-files and
non-YAML files such as ``README.md`` are ignored)::

    standard.yaml            header (id, title, edition, description)
    agencies.yaml            kinds: [...], agencies: [...]
    purposes.yaml            purposes: [...]
    conditions.yaml          conditions: [...]  (sharing conditions of 有条件 fields)
    code_tables/<id>.yaml    one code table per file, file stem == id
    resources/<name>.yaml    one resource type per file, file stem == name
    deliveries/<code>.yaml   one delivery kind per file, file stem == code (optional directory)

Contract of :func:`load_standard`: it returns a fully cross-checked :class:`Standard` with
record checkers precompiled, or raises :class:`StandardError` listing every problem found, each
with file, 1-based line and column where the YAML parser can tell.

Cross-file checks: agency kinds and prefixes unique; agency kind exists, code prefix matches
the kind, division is in code table ``division``; codes match the table's ``code_pattern``;
resource owner is an agency kind; ``id_field`` is a required non-list field; ``code_table`` and
``agency_kind`` references exist; every resource type except ``case`` has a required string
field ``case_id``; ``case`` has a list field ``handling_agencies`` of agency codes.
References: ``refers_to`` names another resource type (every ``case_id`` outside ``case``
refers to ``case``); a ``mirrors`` field names a ``refers_to`` field of its own resource
(``via``) and a field of the resource that one refers to.
Purposes list stages of code table ``case_stage`` (every purpose lists at least one); sharing
conditions name known purposes; a 有条件 field's ``conditions`` are known condition ids; an
``issued_by`` names a court ``agency_code`` field of the same resource. A court's
``court_code`` is read from its own division (``宁0104`` for 640104); a prison's
``stationed_procuratorate`` is a procuratorate of the agency list. Delivery kinds are checked
by :func:`gateway.standard.delivery_checks.check_delivery_kind`.

``Standard.version`` is ``"sha256:" + hex`` of: for each YAML file in sorted relative POSIX
path order, ``"<path>\\n<byte length>\\n"`` + contents (CRLF normalised to LF) + ``"\\n"``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Container, Sequence
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from gateway.standard._yaml import YamlDocument, YamlPath, read_yaml
from gateway.standard.delivery_checks import check_delivery_kind
from gateway.standard.delivery_kinds import DeliveryKind
from gateway.standard.errors import StandardError, StandardProblem
from gateway.standard.model import (
    Agency,
    AgencyKind,
    CodeTable,
    FieldType,
    Purpose,
    ResourceType,
    SharingCondition,
    Standard,
    StandardInfo,
)
from gateway.standard.records import compile_record_validators
from gateway.standard.validators import court_code_division

__all__ = ["DIVISION_TABLE", "load_standard"]

#: Id of the code table that ``division`` fields and agency divisions are checked against.
DIVISION_TABLE = "division"

_TOP_FILES = ("standard.yaml", "agencies.yaml", "purposes.yaml", "conditions.yaml")
#: Code table of case stages, which purposes list.
STAGE_TABLE = "case_stage"
_SUBDIRS = ("code_tables", "resources", "deliveries")
_CASE = "case"
_CASE_ID = "case_id"
_HANDLING = "handling_agencies"

_M = TypeVar("_M", bound=BaseModel)


class _AgenciesFile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    kinds: tuple[AgencyKind, ...]
    agencies: tuple[Agency, ...]


class _PurposesFile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    purposes: tuple[Purpose, ...]


class _ConditionsFile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    conditions: tuple[SharingCondition, ...]


def _loc(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<document>"


def _field_hint(data: object, loc: YamlPath) -> str:
    """`` (field 'x')`` when ``loc`` points into a resource's ``fields`` list."""
    if len(loc) >= 2 and loc[0] == "fields" and isinstance(loc[1], int) and isinstance(data, dict):
        items = data.get("fields")
        if isinstance(items, list) and 0 <= loc[1] < len(items) and isinstance(items[loc[1]], dict):
            name = items[loc[1]].get("name")
            if isinstance(name, str):
                return f" (field {name!r})"
    return ""


class _Loader:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.problems: list[StandardProblem] = []

    # -- helpers -------------------------------------------------------------------------

    def _file(self, rel: str) -> str:
        return str(self.directory / rel)

    def _validate(self, doc: YamlDocument, model: type[_M]) -> _M | None:
        if not isinstance(doc.data, dict):
            self.problems.append(doc.problem((), "expected a mapping at the top level"))
            return None
        try:
            return model.model_validate(doc.data)
        except ValidationError as exc:
            for err in exc.errors(include_url=False):
                loc: YamlPath = tuple(err["loc"])
                where = _loc(loc) + _field_hint(doc.data, loc)
                self.problems.append(doc.problem(loc, f"{where}: {err['msg']}"))
            return None

    # -- discovery and digest ------------------------------------------------------------

    def discover(self) -> list[str]:
        found: list[str] = []
        for path in sorted(self.directory.rglob("*")):
            rel = path.relative_to(self.directory)
            if any(part.startswith(".") for part in rel.parts) or not path.is_file():
                continue
            if path.suffix not in (".yaml", ".yml"):
                continue
            posix = rel.as_posix()
            found.append(posix)
            top_level = len(rel.parts) == 1 and posix in _TOP_FILES
            in_subdir = len(rel.parts) == 2 and rel.parts[0] in _SUBDIRS
            if path.suffix == ".yml":
                self.problems.append(StandardProblem("use the .yaml extension", str(path)))
            elif not (top_level or in_subdir):
                self.problems.append(
                    StandardProblem("unexpected file in the standard directory", str(path))
                )
        for name in _TOP_FILES:
            if name not in found:
                self.problems.append(StandardProblem("required file is missing", self._file(name)))
        return found

    def digest(self, files: Sequence[str]) -> str:
        h = hashlib.sha256()
        for rel in sorted(files):
            content = (self.directory / rel).read_bytes().replace(b"\r\n", b"\n")
            h.update(f"{rel}\n{len(content)}\n".encode())
            h.update(content)
            h.update(b"\n")
        return "sha256:" + h.hexdigest()

    # -- per-file parsing ----------------------------------------------------------------

    def read(self, rel: str) -> YamlDocument | None:
        try:
            return read_yaml(self.directory / rel)
        except StandardError as exc:
            self.problems.extend(exc.problems)
            return None

    def check_stem(self, doc: YamlDocument, key: str, value: str) -> None:
        stem = Path(doc.file).stem
        if value != stem:
            self.problems.append(
                doc.problem((key,), f"{key} {value!r} must match the file name {stem!r}")
            )

    def precheck_resource(self, doc: YamlDocument) -> bool:
        """Duplicate field names and a missing id field, located precisely."""
        data = doc.data
        if not isinstance(data, dict) or not isinstance(data.get("fields"), list):
            return True  # the model validation reports the shape problem
        ok = True
        seen: dict[str, int] = {}
        for i, item in enumerate(data["fields"]):
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                continue
            name = item["name"]
            if name in seen:
                first_line, _ = doc.locate(("fields", seen[name], "name"))
                self.problems.append(
                    doc.problem(
                        ("fields", i, "name"),
                        f"duplicate field {name!r} (first defined on line {first_line})",
                    )
                )
                ok = False
            else:
                seen[name] = i
        id_field = data.get("id_field")
        if isinstance(id_field, str) and seen and id_field not in seen:
            self.problems.append(
                doc.problem(("id_field",), f"id_field {id_field!r} is not a field")
            )
            ok = False
        return ok

    # -- cross-references ----------------------------------------------------------------

    def check_agencies(
        self,
        doc: YamlDocument,
        parsed: _AgenciesFile,
        divisions: CodeTable | None,
    ) -> None:
        kinds: dict[str, AgencyKind] = {}
        prefixes: set[str] = set()
        for i, kind in enumerate(parsed.kinds):
            if kind.code in kinds:
                self._dup(doc, ("kinds", i, "code"), "agency kind", kind.code)
            kinds[kind.code] = kind
            if kind.prefix in prefixes:
                self._dup(doc, ("kinds", i, "prefix"), "agency code prefix", kind.prefix)
            prefixes.add(kind.prefix)
        codes: set[str] = set()
        for i, agency in enumerate(parsed.agencies):
            if agency.code in codes:
                self._dup(doc, ("agencies", i, "code"), "agency", agency.code)
            codes.add(agency.code)
            kind_spec = kinds.get(agency.kind)
            if kind_spec is None:
                self.problems.append(
                    doc.problem(("agencies", i, "kind"), f"unknown agency kind {agency.kind!r}")
                )
            elif not agency.code.startswith(kind_spec.prefix):
                self.problems.append(
                    doc.problem(
                        ("agencies", i, "code"),
                        f"agency code {agency.code!r} must start with {kind_spec.prefix!r} "
                        f"(kind {agency.kind})",
                    )
                )
            if divisions is not None and agency.division not in divisions:
                self.problems.append(
                    doc.problem(
                        ("agencies", i, "division"),
                        f"division {agency.division!r} is not in code table {DIVISION_TABLE!r}",
                    )
                )
            self._check_court_code(doc, i, agency)
        for i, agency in enumerate(parsed.agencies):
            stationed = agency.stationed_procuratorate
            if stationed is None:
                continue
            stationed_kind = next((a.kind for a in parsed.agencies if a.code == stationed), None)
            if agency.kind != "prison" or stationed_kind != "procuratorate":
                self.problems.append(
                    doc.problem(
                        ("agencies", i, "stationed_procuratorate"),
                        "stationed_procuratorate is for prisons, and names a procuratorate "
                        "of the agency list",
                    )
                )

    def _check_court_code(self, doc: YamlDocument, i: int, agency: Agency) -> None:
        code = agency.court_code
        if code is None:
            return
        where: YamlPath = ("agencies", i, "court_code")
        if agency.kind != "court":
            self.problems.append(doc.problem(where, "court_code is only for courts"))
        elif court_code_division(code) != agency.division:
            self.problems.append(
                doc.problem(
                    where,
                    f"court code {code!r} does not read as the court's division "
                    f"{agency.division!r} (province abbreviation + division digits)",
                )
            )

    def check_purposes(
        self, doc: YamlDocument, parsed: _PurposesFile, stages: CodeTable | None
    ) -> None:
        self._unique(doc, "purposes", "code", [p.code for p in parsed.purposes], "purpose")
        for i, purpose in enumerate(parsed.purposes):
            problem = f"is not in code table {STAGE_TABLE!r}"
            where: YamlPath = ("purposes", i, "stages")
            self._members(doc, where, purpose.stages, stages, problem, "stage")

    def check_conditions(
        self, doc: YamlDocument, parsed: _ConditionsFile, purposes: set[str]
    ) -> None:
        ids = [c.id for c in parsed.conditions]
        self._unique(doc, "conditions", "id", ids, "sharing condition")
        for i, condition in enumerate(parsed.conditions):
            where: YamlPath = ("conditions", i, "purposes")
            problem = "is not a purpose of the standard"
            self._members(doc, where, condition.purposes, purposes or None, problem, "purpose")

    def _unique(
        self, doc: YamlDocument, section: str, key: str, values: Sequence[str], what: str
    ) -> None:
        seen: set[str] = set()
        for i, value in enumerate(values):
            if value in seen:
                self._dup(doc, (section, i, key), what, value)
            seen.add(value)

    def _members(
        self,
        doc: YamlDocument,
        path: YamlPath,
        values: Sequence[str],
        known: Container[str] | None,
        problem: str,
        what: str,
    ) -> None:
        """Each of ``values`` (at ``path``) is in ``known`` (not checked when ``None``)."""
        for j, value in enumerate(values):
            if known is not None and value not in known:
                self.problems.append(doc.problem((*path, j), f"{what} {value!r} {problem}"))

    def check_code_table(self, doc: YamlDocument, table: CodeTable) -> None:
        if table.code_pattern is None:
            return
        pattern = re.compile(table.code_pattern)
        for code in table.codes:
            if pattern.fullmatch(code) is None:
                self.problems.append(
                    doc.problem(
                        ("codes", code),
                        f"code {code!r} does not match code_pattern {table.code_pattern!r}",
                    )
                )

    def check_resource(
        self,
        doc: YamlDocument,
        resource: ResourceType,
        kinds: set[str],
        tables: set[str],
    ) -> None:
        if resource.owner not in kinds:
            self.problems.append(
                doc.problem(("owner",), f"unknown owner agency kind {resource.owner!r}")
            )
        for i, spec in enumerate(resource.fields):
            where: YamlPath = ("fields", i)
            if spec.name == resource.id_field and (spec.is_list or not spec.required):
                self.problems.append(
                    doc.problem(where, f"id field {spec.name!r} must be required and not a list")
                )
            if spec.code_table is not None and spec.code_table not in tables:
                self.problems.append(
                    doc.problem((*where, "code_table"), f"unknown code table {spec.code_table!r}")
                )
            if spec.type is FieldType.DIVISION and DIVISION_TABLE not in tables:
                self.problems.append(
                    doc.problem(
                        (*where, "type"), f"division fields need code table {DIVISION_TABLE!r}"
                    )
                )
            if spec.agency_kind is not None and spec.agency_kind not in kinds:
                self.problems.append(
                    doc.problem(
                        (*where, "agency_kind"), f"unknown agency kind {spec.agency_kind!r}"
                    )
                )
        self._check_outline_invariants(doc, resource)

    def _check_outline_invariants(self, doc: YamlDocument, resource: ResourceType) -> None:
        if resource.name == _CASE:
            if not resource.has_field(_HANDLING):
                self.problems.append(
                    doc.problem(("fields",), f"resource {_CASE!r} needs field {_HANDLING!r}")
                )
                return
            spec = resource.field(_HANDLING)
            if spec.type is not FieldType.AGENCY_CODE or not spec.is_list or not spec.required:
                i = resource.field_names.index(_HANDLING)
                self.problems.append(
                    doc.problem(
                        ("fields", i),
                        f"{_HANDLING!r} must be a required list of agency_code",
                    )
                )
            return
        if not resource.has_field(_CASE_ID):
            self.problems.append(
                doc.problem(("fields",), f"every resource except {_CASE!r} needs {_CASE_ID!r}")
            )
            return
        spec = resource.field(_CASE_ID)
        if spec.type is not FieldType.STRING or spec.is_list or not spec.required:
            i = resource.field_names.index(_CASE_ID)
            self.problems.append(
                doc.problem(("fields", i), f"{_CASE_ID!r} must be a required string, not a list")
            )

    def check_field_links(
        self, doc: YamlDocument, resource: ResourceType, conditions: set[str] | None
    ) -> None:
        """Sharing-condition ids exist; ``issued_by`` names a court field of the resource."""
        for i, spec in enumerate(resource.fields):
            where: YamlPath = ("fields", i)
            for j, condition in enumerate(spec.conditions):
                if conditions is not None and condition not in conditions:
                    self.problems.append(
                        doc.problem(
                            (*where, "conditions", j), f"unknown sharing condition {condition!r}"
                        )
                    )
            if spec.issued_by is None:
                continue
            court = resource.field(spec.issued_by) if resource.has_field(spec.issued_by) else None
            if (
                court is None
                or court.type is not FieldType.AGENCY_CODE
                or court.is_list
                or (court.agency_kind != "court")
            ):
                self.problems.append(
                    doc.problem(
                        (*where, "issued_by"),
                        f"{spec.issued_by!r} is not a single court agency_code field of "
                        f"{resource.name!r}",
                    )
                )

    def check_references(
        self, doc: YamlDocument, resource: ResourceType, resources: dict[str, ResourceType]
    ) -> None:
        for i, spec in enumerate(resource.fields):
            where: YamlPath = ("fields", i)
            if spec.refers_to is not None:
                if spec.refers_to not in resources:
                    self.problems.append(
                        doc.problem(
                            (*where, "refers_to"), f"unknown resource type {spec.refers_to!r}"
                        )
                    )
                elif spec.name == resource.id_field:
                    self.problems.append(
                        doc.problem((*where, "refers_to"), "the id field cannot refer elsewhere")
                    )
            elif spec.name == _CASE_ID and resource.name != _CASE:
                self.problems.append(
                    doc.problem(where, f"{_CASE_ID!r} must declare refers_to: {_CASE}")
                )
            if spec.mirrors is None:
                continue
            via = resource.field(spec.mirrors.via) if resource.has_field(spec.mirrors.via) else None
            if via is None or via.refers_to is None or via.is_list:
                self.problems.append(
                    doc.problem(
                        (*where, "mirrors", "via"),
                        f"{spec.mirrors.via!r} is not a single-valued refers_to field "
                        f"of {resource.name!r}",
                    )
                )
                continue
            target = resources.get(via.refers_to)
            if target is not None and not target.has_field(spec.mirrors.field):
                self.problems.append(
                    doc.problem(
                        (*where, "mirrors", "field"),
                        f"{via.refers_to!r} has no field {spec.mirrors.field!r}",
                    )
                )

    def _dup(self, doc: YamlDocument, path: YamlPath, what: str, value: str) -> None:
        self.problems.append(doc.problem(path, f"duplicate {what} {value!r}"))

    # -- main ----------------------------------------------------------------------------

    def load(self) -> Standard:
        if not self.directory.is_dir():
            raise StandardError.single("standard directory not found", str(self.directory))
        files = self.discover()
        version = self.digest(files)
        key = (str(self.directory.resolve()), version)
        if not self.problems and (loaded := _LOADED.get(key)) is not None:
            return loaded
        docs = {rel: doc for rel in files if (doc := self.read(rel)) is not None}

        def parse(rel: str, model: type[_M]) -> tuple[YamlDocument, _M] | None:
            doc = docs.get(rel)
            if doc is None:
                return None
            parsed = self._validate(doc, model)
            return None if parsed is None else (doc, parsed)

        info = parse("standard.yaml", StandardInfo)
        agencies = parse("agencies.yaml", _AgenciesFile)
        purposes = parse("purposes.yaml", _PurposesFile)
        conditions = parse("conditions.yaml", _ConditionsFile)

        tables: list[tuple[YamlDocument, CodeTable]] = []
        resources: list[tuple[YamlDocument, ResourceType]] = []
        deliveries: list[tuple[YamlDocument, DeliveryKind]] = []
        for rel in sorted(docs):
            if rel.startswith("deliveries/"):
                if (parsed_kind := parse(rel, DeliveryKind)) is not None:
                    self.check_stem(parsed_kind[0], "code", parsed_kind[1].code)
                    deliveries.append(parsed_kind)
            elif rel.startswith("code_tables/"):
                if (parsed_table := parse(rel, CodeTable)) is not None:
                    self.check_stem(parsed_table[0], "id", parsed_table[1].id)
                    self.check_code_table(*parsed_table)
                    tables.append(parsed_table)
            elif (
                rel.startswith("resources/")
                and self.precheck_resource(docs[rel])
                and (parsed_resource := parse(rel, ResourceType)) is not None
            ):
                self.check_stem(parsed_resource[0], "name", parsed_resource[1].name)
                resources.append(parsed_resource)

        table_ids = {t.id for _, t in tables}
        divisions = next((t for _, t in tables if t.id == DIVISION_TABLE), None)
        if divisions is None and "code_tables/division.yaml" not in docs:
            self.problems.append(
                StandardProblem(
                    f"code table {DIVISION_TABLE!r} is required",
                    self._file(f"code_tables/{DIVISION_TABLE}.yaml"),
                )
            )
        if agencies is not None:
            self.check_agencies(agencies[0], agencies[1], divisions)
        stage_table = next((t for _, t in tables if t.id == STAGE_TABLE), None)
        if stage_table is None and f"code_tables/{STAGE_TABLE}.yaml" not in docs:
            self.problems.append(
                StandardProblem(
                    f"code table {STAGE_TABLE!r} is required (purposes list their stages)",
                    self._file(f"code_tables/{STAGE_TABLE}.yaml"),
                )
            )
        if purposes is not None:
            self.check_purposes(purposes[0], purposes[1], stage_table)
        purpose_codes = {p.code for p in purposes[1].purposes} if purposes is not None else set()
        if conditions is not None:
            self.check_conditions(conditions[0], conditions[1], purpose_codes)
        condition_ids = {c.id for c in conditions[1].conditions} if conditions is not None else None
        kind_codes = {k.code for k in agencies[1].kinds} if agencies is not None else set()
        by_name = {resource.name: resource for _, resource in resources}
        for doc, resource in resources:
            self.check_resource(doc, resource, kind_codes, table_ids)
            self.check_references(doc, resource, by_name)
            self.check_field_links(doc, resource, condition_ids)
        purpose_index = {p.code: p for p in purposes[1].purposes} if purposes is not None else {}
        for doc, kind in deliveries:
            check_delivery_kind(
                doc,
                kind,
                agency_kinds=kind_codes,
                resources=by_name,
                purposes=purpose_index,
                stages=stage_table,
                problems=self.problems,
            )

        if (
            self.problems
            or info is None
            or agencies is None
            or purposes is None
            or conditions is None
        ):
            raise StandardError(self.problems or [StandardProblem("standard is incomplete")])
        try:
            standard = Standard(
                info=info[1],
                version=version,
                agency_kinds=agencies[1].kinds,
                agencies=agencies[1].agencies,
                purposes=purposes[1].purposes,
                code_tables=tuple(t for _, t in tables),
                resources=tuple(r for _, r in resources),
                conditions=conditions[1].conditions,
                deliveries=tuple(k for _, k in deliveries),
            )
        except (ValidationError, ValueError) as exc:  # pragma: no cover - guarded by checks
            raise StandardError.single(
                f"standard is inconsistent: {exc}", str(self.directory)
            ) from None
        compile_record_validators(standard)
        if len(_LOADED) >= _LOADED_MAX:
            _LOADED.clear()
        _LOADED[key] = standard
        return standard


# Standards loaded in this process, by directory and content digest (``Standard.version``
# covers every YAML file's name and bytes). A Standard is immutable, and the same files give
# the same Standard: an app start, a policy candidate's check and the isolated evaluator
# each loaded it again (~0.1 s). Only a load without problems is kept.
_LOADED: dict[tuple[str, str], Standard] = {}
_LOADED_MAX = 16


def load_standard(directory: Path) -> Standard:
    """Load, validate and cross-check the standard in ``directory`` (see module docstring).

    Raises :class:`StandardError` listing every problem, with file/line/column.
    """
    return _Loader(Path(directory)).load()
