"""Public catalog document and the JSON Schema of the policy files."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from gateway.standard import Standard, catalog_document
from gateway.standard._yaml import read_yaml

jsonschema_rs = pytest.importorskip("jsonschema_rs")


def test_catalog_is_json_and_complete(standard: Standard) -> None:
    doc = catalog_document(standard)
    assert json.loads(json.dumps(doc, ensure_ascii=False)) == doc
    assert doc["standard"] == {
        "id": standard.info.id,
        "title": standard.info.title,
        "edition": standard.info.edition,
        "description": standard.info.description,
        "version": standard.version,
    }
    resources = {r["name"]: r for r in doc["resources"]}  # type: ignore[attr-defined]
    assert set(resources) == {r.name for r in standard.resources}
    fields = {f["name"]: f for f in resources["technical_investigation"]["fields"]}
    material = fields["material_summary"]
    assert material["sharing"] == "不予共享"
    assert material["grade"] == "核心"
    assert "第152条" in material["basis"]
    assert resources["technical_investigation"]["grade"] == "核心"
    person = {f["name"]: f for f in resources["person"]["fields"]}
    assert person["id_number"] == {
        "name": "id_number",
        "label": "公民身份号码",
        "description": standard.resource("person").field("id_number").description,
        "type": "citizen_id",
        "list": False,
        "condition": "办案；法律监督；刑罚执行",
        "conditions": ["case-handling", "legal-supervision", "execution"],
        "grade": "一般",
        "sharing": "有条件",
        "personal_info": True,
        "sensitive": True,
        "required": False,
        "filterable": True,
    }
    case_fields = {f["name"]: f for f in resources["case"]["fields"]}
    assert case_fields["handling_agencies"]["list"] is True
    assert case_fields["stage"]["code_table"] == "case_stage"
    tables = {t["id"]: t for t in doc["code_tables"]}  # type: ignore[attr-defined]
    assert tables["ethnicity"]["codes"]["03"] == "回族"
    assert len(doc["purposes"]) == 16  # type: ignore[arg-type]
    assert len(doc["agencies"]) == 18  # type: ignore[arg-type]
    purposes = {p["code"]: p for p in doc["purposes"]}  # type: ignore[attr-defined]
    assert purposes["SENTENCE_EXECUTION"]["stages"] == ["EXECUTION"]
    assert "监狱法 第16条" in purposes["SENTENCE_EXECUTION"]["legal_basis"]
    conditions = {c["id"]: c for c in doc["conditions"]}  # type: ignore[attr-defined]
    assert conditions["execution"]["name"] == "刑罚执行"
    assert tables["division"]["edition"] == standard.code_table("division").edition
    judgment = {f["name"]: f for f in resources["judgment"]["fields"]}
    assert judgment["court_case_number"]["party"] is True
    assert judgment["court_case_number"]["issued_by"] == "court"
    assert "party" not in judgment["verdict"]


def test_catalog_is_a_fresh_copy(standard: Standard) -> None:
    doc = catalog_document(standard)
    doc["code_tables"][0]["codes"]["X"] = "tampered"  # type: ignore[index]
    assert "X" not in catalog_document(standard)["code_tables"][0]["codes"]  # type: ignore[index]


def _validator_for(schema_path: Path, definition: str) -> object:
    schema = json.loads(schema_path.read_text(encoding="utf-8"))
    wrapper = copy.deepcopy(schema)
    del wrapper["oneOf"]
    wrapper["$ref"] = f"#/$defs/{definition}"
    return jsonschema_rs.Draft202012Validator(wrapper)


def _definition_for(rel: str) -> str:
    if rel.startswith("code_tables/"):
        return "codeTableFile"
    if rel.startswith("resources/"):
        return "resourceFile"
    if rel.startswith("deliveries/"):
        return "deliveryKindFile"
    return {
        "standard.yaml": "standardFile",
        "agencies.yaml": "agenciesFile",
        "purposes.yaml": "purposesFile",
        "conditions.yaml": "conditionsFile",
    }[rel]


def test_schema_is_draft_2020_12(schema_path: Path) -> None:
    schema = json.loads(schema_path.read_text(encoding="utf-8"))
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema_rs.Draft202012Validator(schema)  # compiles


def test_shipped_files_conform_to_schema(standard_dir: Path, schema_path: Path) -> None:
    root = jsonschema_rs.Draft202012Validator(json.loads(schema_path.read_text(encoding="utf-8")))
    files = sorted(p.relative_to(standard_dir).as_posix() for p in standard_dir.rglob("*.yaml"))
    assert len(files) == 4 + 20 + 11 + 10
    for rel in files:
        data = read_yaml(standard_dir / rel).data
        validator = _validator_for(schema_path, _definition_for(rel))
        errors = [e.message for e in validator.iter_errors(data)]  # type: ignore[attr-defined]
        assert errors == [], rel
        assert root.is_valid(data), rel


@pytest.mark.parametrize(
    "mutate",
    [
        lambda f: f.update(grade="机密"),
        lambda f: (f.pop("max_length"), f.update(type="code")),  # code without code_table
        lambda f: (f.pop("conditions"), f.update(sharing="不予共享")),  # no basis
        lambda f: f.pop("conditions"),  # a 有条件 field naming no condition
        lambda f: f.update(basis="刑事诉讼法"),  # basis on a shared field
        lambda f: f.update(sensitive=True, personal_info=False),
        lambda f: f.update(unknown_key=1),
        lambda f: f.pop("required"),
        lambda f: f.update(minimum=0),  # minimum on a string field
    ],
)
def test_schema_rejects_inconsistent_fields(
    standard_dir: Path, schema_path: Path, mutate: object
) -> None:
    data = read_yaml(standard_dir / "resources" / "case.yaml").data
    assert isinstance(data, dict)
    field = data["fields"][2]  # case_name: string, 重要, 有条件
    mutate(field)  # type: ignore[operator]
    validator = _validator_for(schema_path, "resourceFile")
    assert not validator.is_valid(data)  # type: ignore[attr-defined]
