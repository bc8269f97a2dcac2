"""The published JSON Schemas accept the shipped files and reject what the loader rejects."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.policy import PolicyError
from gateway.standard import Standard
from tests.policy.conftest import POLICIES, PolicyWriter, item, load, perm

jsonschema_rs = pytest.importorskip("jsonschema_rs")

SCHEMAS = POLICIES / "schema"


def _validator(name: str) -> Any:
    schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text(encoding="utf-8"))
    return jsonschema_rs.validator_for(schema)


def _json(path: Path) -> Any:
    # YAML dates become strings, as a JSON document would carry them.
    return json.loads(json.dumps(yaml.safe_load(path.read_text(encoding="utf-8")), default=str))


@pytest.mark.parametrize(
    ("folder", "schema"),
    [
        ("permissions", "policy-permissions"),
        ("negative_list", "policy-negative-list"),
        ("tests", "policy-tests"),
    ],
)
def test_shipped_files_match_their_schema(folder: str, schema: str) -> None:
    validator = _validator(schema)
    files = sorted((POLICIES / folder).glob("*.yaml"))
    assert files
    for path in files:
        errors = [e.message for e in validator.iter_errors(_json(path))]
        assert errors == [], f"{path}: {errors}"


@pytest.mark.parametrize(
    ("kind", "rule"),
    [
        ("permissions", perm("r", fields="all")),
        ("permissions", perm("r", case_binding="yes")),
        ("permissions", perm("r", grantee={"kind": "court", "agency": "FY640104"})),
        ("permissions", {k: v for k, v in perm("r").items() if k != "legal_basis"}),
        ("permissions", perm("R!", extra=1)),
        ("negative_list", item("n", action="mask_fields", fields=["name"])),
        ("negative_list", item("n", action="withhold_fields", fields=["name"], conceal=True)),
        ("negative_list", item("n", action="withhold_record", fields=["name"])),
        (
            "negative_list",
            item("n", action="mask_fields", fields=["name"], mask={"kind": "redact", "first": 1}),
        ),
        ("negative_list", item("n", action="explode")),
        ("negative_list", item("n", exceptions=[{"id": "e", "legal_basis": "x"}])),
    ],
)
def test_schema_and_loader_agree_on_invalid_rules(
    standard: Standard, write_policies: PolicyWriter, kind: str, rule: dict[str, Any]
) -> None:
    schema = "policy-permissions" if kind == "permissions" else "policy-negative-list"
    assert not _validator(schema).is_valid({kind: [rule]})
    root = write_policies([rule], []) if kind == "permissions" else write_policies([], [rule])
    with pytest.raises(PolicyError):
        load(root, standard)
