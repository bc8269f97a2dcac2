"""Load and validate a policy directory into a :class:`~gateway.policy.policy_set.PolicySet`.

Layout of ``policies_dir`` (the loader reads ``standard/``, ``permissions/`` and
``negative_list/``; ``tests/`` and ``schema/`` are not part of the policy set)::

    standard/        the unified standard (gateway.standard.load_standard)
    permissions/     **/*.yaml, each ``{description?, permissions?: [...], deliveries?: [...]}``
                     (at least one of the two lists; ``deliveries``: who may send which
                     delivery kinds to whom, :class:`~gateway.policy.model.DeliveryPermission`)
    negative_list/   **/*.yaml, each ``{description?, negative_list: [...]}``

Contract of :func:`load_policy_set`: it returns a fully validated policy set or raises
:class:`~gateway.policy.errors.PolicyError` listing every problem found — it never half-loads.
Errors carry file:line:column (of the offending YAML node) and the rule id:

* YAML problems (syntax, duplicate keys, aliases) and schema problems (wrong types, missing or
  unknown keys), checked rule by rule so that one bad rule does not hide the others;
* unknown resources, fields, purposes, agencies and agency kinds (against the standard), and
  permissions explicitly granting a field the standard classes 不予共享;
* sharing conditions: a permission ``satisfies`` only conditions of the standard, every one of
  its purposes is among each such condition's purposes, and every 有条件 field it lists by
  name has a condition it satisfies (``"*"`` grants only the 有条件 fields it satisfies);
* CEL conditions that do not compile or fail the static checks of
  :func:`gateway.policy.cel_env.compile_condition` (unknown ``record.<field>`` …);
* delivery rules naming an unknown agency kind or delivery kind, a sender or recipient kind
  the delivery kind does not declare (a recipient kind may be one of its ``copies``, 抄送), or
  a recipient kind it declares no purpose for;
* duplicate ids across all files (permissions, items and exceptions share one namespace).

Then :func:`gateway.policy.checks.run_static_checks` runs; its findings are warnings kept on
``PolicySet.warnings``, or errors when ``strict=True``.

``version`` = ``"sha256:" + hex`` of ``"standard\\n<standard version>\\n"`` followed by, for each
policy file in sorted relative POSIX path order, ``"<path>\\n<byte length>\\n"`` + contents
(CRLF normalised to LF) + ``"\\n"``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from datetime import date
from pathlib import Path

from pydantic import BaseModel, ValidationError

from gateway.policy.cel_env import Condition, ConditionError, compile_condition
from gateway.policy.checks import run_static_checks
from gateway.policy.errors import PolicyError, PolicyProblem
from gateway.policy.model import (
    ALL_RESOURCES,
    Action,
    DeliveryPermission,
    NegativeItem,
    Permission,
)
from gateway.policy.policy_set import PolicySet, RuleLocation
from gateway.standard import ResourceType, SharingClass, Standard, StandardError, load_standard
from gateway.standard._yaml import YamlDocument, YamlPath, read_yaml

__all__ = ["NEGATIVE_LIST_DIR", "PERMISSIONS_DIR", "load_policy_documents", "load_policy_set"]

PERMISSIONS_DIR = "permissions"
NEGATIVE_LIST_DIR = "negative_list"
_KEY = re.compile(r"[a-z_][a-z0-9_]*")
_SECTIONS = {PERMISSIONS_DIR: "permissions", NEGATIVE_LIST_DIR: "negative_list"}


def _data_path(data: object, loc: Sequence[str | int]) -> YamlPath:
    """Keep the parts of a pydantic error location that address real nodes in ``data``."""
    path: list[str | int] = []
    node = data
    for part in loc:
        if isinstance(node, dict) and isinstance(part, str):
            found = part in node
        else:
            found = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if found:
            node = node[part]  # type: ignore[index]
            path.append(part)
    return tuple(path)


class _Loader:
    def __init__(self, standard: Standard) -> None:
        self.standard = standard
        self.problems: list[PolicyProblem] = []
        self.permissions: list[Permission] = []
        self.items: list[NegativeItem] = []
        self.deliveries: list[DeliveryPermission] = []
        self.conditions: dict[str, Condition] = {}
        self.locations: dict[str, RuleLocation] = {}
        self._fields = {r.name: frozenset(r.field_names) for r in standard.resources}
        self._kinds = frozenset(k.code for k in standard.agency_kinds)
        self._agencies = frozenset(a.code for a in standard.agencies)
        self._purposes = frozenset(p.code for p in standard.purposes)
        self._conditions = {c.id: c for c in standard.conditions}

    # -- reporting -----------------------------------------------------------------------

    def _problem(
        self, doc: YamlDocument, path: YamlPath, message: str, code: str, rule: str | None
    ) -> None:
        line, column = doc.locate(path)
        self.problems.append(PolicyProblem(message, doc.file, line, column, rule, code))

    # -- shape ---------------------------------------------------------------------------

    def _validate(
        self, doc: YamlDocument, path: YamlPath, raw: object, model: type[BaseModel]
    ) -> BaseModel | None:
        rule = raw.get("id") if isinstance(raw, dict) else None
        rule_id = rule if isinstance(rule, str) else None
        try:
            return model.model_validate(raw)
        except ValidationError as exc:
            by_path: dict[YamlPath, list[str]] = {}
            for err in exc.errors(include_url=False):
                sub = _data_path(raw, err["loc"])
                where = ".".join(
                    str(p) for p in err["loc"] if isinstance(p, int) or _KEY.fullmatch(p)
                )
                where = where or "<rule>"
                messages = by_path.setdefault(sub, [])
                text = f"{where}: {err['msg']}"
                if text not in messages:
                    messages.append(text)
            for sub, messages in by_path.items():
                self._problem(doc, (*path, *sub), " or ".join(messages), "schema", rule_id)
            return None

    def document(self, section: str, doc: YamlDocument) -> None:
        data = doc.data
        if not isinstance(data, dict):
            self._problem(doc, (), "expected a mapping at the top level", "schema", None)
            return
        lists = (section, "deliveries") if section == "permissions" else (section,)
        for key in data:
            if key not in (*lists, "description"):
                self._problem(doc, (key,), f"unknown top-level key {key!r}", "schema", None)
        if "description" in data and not isinstance(data["description"], str):
            self._problem(doc, ("description",), "description must be text", "schema", None)
        if "deliveries" in lists and "deliveries" in data:
            self._deliveries(doc, data["deliveries"])
            if section not in data:
                return
        rules = data.get(section)
        if not isinstance(rules, list):
            self._problem(doc, (section,), f"{section!r} must be a list of rules", "schema", None)
            return
        model: type[BaseModel] = Permission if section == "permissions" else NegativeItem
        for i, raw in enumerate(rules):
            parsed = self._validate(doc, (section, i), raw, model)
            if isinstance(parsed, Permission):
                self._permission(doc, (section, i), parsed)
            elif isinstance(parsed, NegativeItem):
                self._item(doc, (section, i), parsed)

    def _deliveries(self, doc: YamlDocument, rules: object) -> None:
        if not isinstance(rules, list):
            self._problem(
                doc, ("deliveries",), "'deliveries' must be a list of rules", "schema", None
            )
            return
        for i, raw in enumerate(rules):
            parsed = self._validate(doc, ("deliveries", i), raw, DeliveryPermission)
            if isinstance(parsed, DeliveryPermission):
                self._delivery(doc, ("deliveries", i), parsed)

    # -- cross-references ----------------------------------------------------------------

    def _register(self, doc: YamlDocument, path: YamlPath, rule_id: str) -> None:
        line, column = doc.locate((*path, "id"))
        first = self.locations.get(rule_id)
        if first is not None:
            self._problem(
                doc,
                (*path, "id"),
                f"duplicate rule id {rule_id!r} (first defined at {first})",
                "duplicate-id",
                rule_id,
            )
            return
        self.locations[rule_id] = RuleLocation(doc.file, line, column)

    def _condition(
        self,
        doc: YamlDocument,
        path: YamlPath,
        rule_id: str,
        source: str | None,
        record_fields: list[frozenset[str]] | None,
    ) -> None:
        if source is None:
            return
        try:
            self.conditions[rule_id] = compile_condition(source, record_fields=record_fields)
        except ConditionError as exc:
            for message in exc.messages:
                code = (
                    "cel-compile"
                    if message.startswith("CEL does not compile")
                    else "cel-limit"
                    if message.startswith("CEL limit")
                    else "cel-check"
                )
                self._problem(doc, (*path, "condition"), message, code, rule_id)

    def _permission(self, doc: YamlDocument, path: YamlPath, rule: Permission) -> None:
        self._register(doc, path, rule.id)
        std = self.standard
        grantee = rule.grantee
        if grantee.kind is not None and grantee.kind not in self._kinds:
            self._problem(
                doc,
                (*path, "grantee", "kind"),
                f"unknown agency kind {grantee.kind!r}",
                "unknown-agency-kind",
                rule.id,
            )
        if grantee.agency is not None and grantee.agency not in self._agencies:
            self._problem(
                doc,
                (*path, "grantee", "agency"),
                f"unknown agency {grantee.agency!r}",
                "unknown-agency",
                rule.id,
            )
        for i, purpose in enumerate(rule.purposes):
            if purpose not in self._purposes:
                self._problem(
                    doc,
                    (*path, "purposes", i),
                    f"unknown purpose {purpose!r}",
                    "unknown-purpose",
                    rule.id,
                )
        if not std.has_resource(rule.resource):
            self._problem(
                doc,
                (*path, "resource"),
                f"unknown resource {rule.resource!r}",
                "unknown-resource",
                rule.id,
            )
            return
        resource = std.resource(rule.resource)
        if rule.fields != "*":
            for i, name in enumerate(rule.fields):
                if not resource.has_field(name):
                    self._problem(
                        doc,
                        (*path, "fields", i),
                        f"unknown field {name!r} of resource {rule.resource!r}",
                        "unknown-field",
                        rule.id,
                    )
                elif resource.field(name).sharing is SharingClass.NOT_SHARED:
                    self._problem(
                        doc,
                        (*path, "fields", i),
                        f"field {rule.resource}.{name} is 不予共享 in the standard; "
                        "no permission can grant it",
                        "not-shared-field",
                        rule.id,
                    )
        self._satisfies(doc, path, rule, resource)
        if rule.reach is not None and not any(
            spec.refers_to == "person" for spec in resource.references
        ):
            self._problem(
                doc,
                (*path, "reach", "kind"),
                f"reach {rule.reach.kind.value!r} needs a field of {rule.resource!r} that refers "
                "to a person",
                "reach-without-persons",
                rule.id,
            )
        self._condition(doc, path, rule.id, rule.condition, [self._fields[rule.resource]])
        self.permissions.append(rule)

    def _satisfies(
        self, doc: YamlDocument, path: YamlPath, rule: Permission, resource: ResourceType
    ) -> None:
        satisfied: set[str] = set()
        for i, condition_id in enumerate(rule.satisfies):
            condition = self._conditions.get(condition_id)
            if condition is None:
                self._problem(
                    doc,
                    (*path, "satisfies", i),
                    f"unknown sharing condition {condition_id!r}",
                    "unknown-condition",
                    rule.id,
                )
                continue
            satisfied.add(condition_id)
            outside = [p for p in rule.purposes if p not in condition.purposes]
            if outside:
                self._problem(
                    doc,
                    (*path, "satisfies", i),
                    f"condition {condition_id!r} ({condition.name}) cannot be satisfied for "
                    f"purpose(s) {', '.join(outside)}; it holds for "
                    f"{', '.join(condition.purposes)}",
                    "condition-purpose",
                    rule.id,
                )
        if rule.fields == "*":
            return
        for i, name in enumerate(rule.fields):
            if not resource.has_field(name):
                continue
            spec = resource.field(name)
            if spec.sharing is SharingClass.CONDITIONAL and not satisfied & set(spec.conditions):
                self._problem(
                    doc,
                    (*path, "fields", i),
                    f"field {rule.resource}.{name} is 有条件 ({', '.join(spec.conditions)}); "
                    "the permission satisfies none of its conditions (add one to 'satisfies')",
                    "unsatisfied-condition",
                    rule.id,
                )

    def _delivery(self, doc: YamlDocument, path: YamlPath, rule: DeliveryPermission) -> None:
        self._register(doc, path, rule.id)

        def problem(sub: YamlPath, message: str, code: str) -> None:
            self._problem(doc, (*path, *sub), message, code, rule.id)

        for key, kinds in (("senders", rule.senders), ("recipients", rule.recipients)):
            for i, name in enumerate(kinds):
                if name not in self._kinds:
                    problem((key, i), f"unknown agency kind {name!r}", "unknown-agency-kind")
        for i, code in enumerate(rule.kinds):
            try:
                kind = self.standard.delivery_kind(code)
            except KeyError:
                problem(("kinds", i), f"unknown delivery kind {code!r}", "unknown-delivery-kind")
                continue
            for name in rule.senders:
                if name in self._kinds and name not in kind.senders:
                    problem(
                        ("kinds", i),
                        f"{kind.name} ({code}) is not sent by agencies of kind {name!r} "
                        f"(the standard: {', '.join(kind.senders)})",
                        "delivery-sender",
                    )
            for name in rule.recipients:
                if name not in self._kinds:
                    continue
                if name not in kind.recipients and name not in kind.copies:
                    problem(
                        ("kinds", i),
                        f"{kind.name} ({code}) does not go to agencies of kind {name!r} "
                        f"(the standard: {', '.join(kind.recipients)}; "
                        f"copies: {', '.join(kind.copies) or 'none'})",
                        "delivery-recipient",
                    )
                elif kind.recipient_purpose(name) is None:
                    problem(
                        ("kinds", i),
                        f"{kind.name} ({code}) declares no purpose agencies of kind {name!r} "
                        "receive it under (recipient_purposes); it cannot be delivered to them",
                        "delivery-without-purpose",
                    )
        self.deliveries.append(rule)

    def _item(self, doc: YamlDocument, path: YamlPath, item: NegativeItem) -> None:
        self._register(doc, path, item.id)
        covered: list[frozenset[str]] = []
        if item.resources == (ALL_RESOURCES,):
            covered = list(self._fields.values())
        else:
            for i, name in enumerate(item.resources):
                if name in self._fields:
                    covered.append(self._fields[name])
                else:
                    sub = (*path, "resource") + ((i,) if isinstance(item.resource, tuple) else ())
                    self._problem(
                        doc, sub, f"unknown resource {name!r}", "unknown-resource", item.id
                    )
        for i, name in enumerate(item.fields or ()):
            if any(name not in fields for fields in covered):
                self._problem(
                    doc,
                    (*path, "fields", i),
                    f"field {name!r} does not exist on every covered resource",
                    "unknown-field",
                    item.id,
                )
        scope = None if item.action is Action.DENY_REQUEST else covered
        self._condition(doc, path, item.id, item.condition, scope)
        for i, exc in enumerate(item.exceptions):
            sub = (*path, "exceptions", i)
            self._register(doc, sub, exc.id)
            self._condition(doc, sub, exc.id, exc.condition, scope)
        self.items.append(item)


def _version(standard: Standard, contents: Iterable[tuple[str, bytes]]) -> str:
    h = hashlib.sha256()
    h.update(f"standard\n{standard.version}\n".encode())
    for rel, content in sorted(contents):
        body = content.replace(b"\r\n", b"\n")
        h.update(f"{rel}\n{len(body)}\n".encode())
        h.update(body)
        h.update(b"\n")
    return "sha256:" + h.hexdigest()


def _finish(
    loader: _Loader,
    version: str,
    files: tuple[str, ...],
    *,
    strict: bool,
    today: date | None,
) -> PolicySet:
    if loader.problems:
        raise PolicyError(loader.problems)
    policy_set = PolicySet(
        version=version,
        standard=loader.standard,
        permissions=tuple(loader.permissions),
        negative_list=tuple(loader.items),
        deliveries=tuple(loader.deliveries),
        conditions=dict(loader.conditions),
        locations=dict(loader.locations),
        files=files,
    )
    findings = run_static_checks(policy_set, today=today)
    if strict and findings:
        raise PolicyError(f.as_error() for f in findings)
    return PolicySet(
        version=policy_set.version,
        standard=policy_set.standard,
        permissions=policy_set.permissions,
        negative_list=policy_set.negative_list,
        deliveries=policy_set.deliveries,
        conditions=policy_set.conditions,
        locations=policy_set.locations,
        warnings=tuple(f.as_warning() for f in findings),
        files=files,
    )


def load_policy_documents(
    standard: Standard,
    documents: Sequence[tuple[str, YamlDocument]],
    *,
    strict: bool = False,
    today: date | None = None,
) -> PolicySet:
    """Validate in-memory documents; each is ``(section, doc)`` with section ``permissions`` or
    ``negative_list``. ``version`` hashes the canonical JSON of each document's data.
    """
    loader = _Loader(standard)
    contents: list[tuple[str, bytes]] = []
    for section, doc in documents:
        if section not in _SECTIONS.values():
            raise ValueError(f"unknown policy section {section!r}")
        loader.document(section, doc)
        body = json.dumps(doc.data, sort_keys=True, ensure_ascii=False, default=str)
        contents.append((f"{section}/{doc.file}", body.encode()))
    files = tuple(doc.file for _, doc in documents)
    return _finish(loader, _version(standard, contents), files, strict=strict, today=today)


def load_policy_set(
    policies_dir: Path,
    *,
    strict: bool = False,
    today: date | None = None,
    standard: Standard | None = None,
) -> PolicySet:
    """Load ``policies_dir`` (see module docstring); raise ``PolicyError`` on any error.

    ``standard`` defaults to ``load_standard(policies_dir / "standard")``. ``today`` (China
    Standard Time by default) is the day static checks compare validity windows against.
    """
    root = Path(policies_dir)
    if standard is None:
        try:
            standard = load_standard(root / "standard")
        except StandardError as exc:
            raise PolicyError.from_standard(exc) from None
    loader = _Loader(standard)
    contents: list[tuple[str, bytes]] = []
    for sub, section in _SECTIONS.items():
        directory = root / sub
        if not directory.is_dir():
            loader.problems.append(
                PolicyProblem("policy directory is missing", str(directory), code="layout")
            )
            continue
        for path in sorted(directory.rglob("*")):
            rel = path.relative_to(root)
            if any(p.startswith(".") for p in rel.parts) or not path.is_file():
                continue
            if path.suffix == ".yml":
                loader.problems.append(
                    PolicyProblem("use the .yaml extension", str(path), code="layout")
                )
                continue
            if path.suffix != ".yaml":
                continue
            contents.append((rel.as_posix(), path.read_bytes()))
            try:
                doc = read_yaml(path)
            except StandardError as exc:
                loader.problems.extend(
                    PolicyProblem(p.message, p.file, p.line, p.column, code="yaml")
                    for p in exc.problems
                )
                continue
            loader.document(section, doc)
    files = tuple(rel for rel, _ in sorted(contents))
    return _finish(loader, _version(standard, contents), files, strict=strict, today=today)
