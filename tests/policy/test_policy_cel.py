"""CEL conditions: static analysis, projections, evaluation failures."""

from __future__ import annotations

import pytest

from gateway.policy.cel_env import (
    MAX_COMPREHENSION_DEPTH,
    MAX_CONDITION_CHARS,
    MAX_NESTING,
    REQUEST_ATTRIBUTES,
    CelEvaluationError,
    ConditionError,
    compile_condition,
    evaluate,
    project_record,
    request_map,
)
from tests.policy.conftest import request

FIELDS = [frozenset({"name", "is_minor", "role", "tags"})]


def test_references_are_found_outside_string_literals() -> None:
    cond = compile_condition(
        'record.name == "record.secret" && record["role"] == \'x\' // record.comment\n'
        "&& request.purpose in ['TRIAL'] && has(record.is_minor)",
        record_fields=FIELDS,
    )
    assert cond.record_fields == {"name", "role", "is_minor"}
    assert cond.request_attrs == {"purpose"}
    assert cond.uses_record
    assert cond.uses_request


def test_dynamic_use_reads_everything() -> None:
    cond = compile_condition('"name" in record && size(request) > 0', record_fields=FIELDS)
    assert cond.record_fields is None
    assert cond.request_attrs is None


def test_comprehension_variables_are_allowed() -> None:
    cond = compile_condition('record.tags.exists(t, t == "x")', record_fields=FIELDS)
    assert cond.record_fields == {"tags"}


@pytest.mark.parametrize(
    ("source", "needle"),
    [
        ("record.name ==", "does not compile"),
        ("record.nickname == 1", "record field 'nickname'"),
        ("request.colour == 1", "unknown request attribute 'colour'"),
        ("sneaky(record.name)", "unknown CEL function 'sneaky'"),
        ("other.x == 1", "unknown variable"),
    ],
)
def test_static_errors(source: str, needle: str) -> None:
    with pytest.raises(ConditionError) as excinfo:
        compile_condition(source, record_fields=FIELDS)
    assert any(needle in m for m in excinfo.value.messages)


def test_request_level_conditions_may_not_read_the_record() -> None:
    with pytest.raises(ConditionError, match="request-level"):
        compile_condition("record.is_minor", record_fields=None)


def test_request_map_and_time() -> None:
    req = request(filters={"defendant_id": "P1"}, stage="TRIAL")
    full = request_map(req, None)
    assert set(full) == set(REQUEST_ATTRIBUTES)
    assert full["date"] == "2025-06-01"
    assert full["case_stage"] == "TRIAL"
    cond = compile_condition(
        'request.time >= timestamp("2025-06-01T00:00:00+08:00") && '
        '"defendant_id" in request.filters && '
        "request.requester_agency in request.handling_agencies",
        record_fields=None,
    )
    assert evaluate(cond, {"request": request_map(req, cond.request_attrs)}) is True


def test_evaluation_failures_raise_cel_evaluation_error() -> None:
    missing = compile_condition("record.is_minor", record_fields=FIELDS)
    with pytest.raises(CelEvaluationError):
        evaluate(missing, {"record": {}})
    not_bool = compile_condition("record.name", record_fields=FIELDS)
    with pytest.raises(CelEvaluationError, match="not bool"):
        evaluate(not_bool, {"record": {"name": "x"}})
    overflow = compile_condition("1 / 0 == 1", record_fields=None)
    with pytest.raises(CelEvaluationError):
        evaluate(overflow, {})


def test_projection_drops_nulls_and_unreferenced_fields() -> None:
    record = {"name": "甲", "role": None, "phone": "1"}
    assert project_record(record, frozenset({"name", "role"})) == {"name": "甲"}
    assert project_record(record, None) == {"name": "甲", "phone": "1"}


# --- static limits (issue 12: a condition seven comprehensions deep froze the service) --------


def _nested(depth: int, items: int = 10) -> str:
    listed = "[" + ",".join(str(i) for i in range(items)) + "]"
    expression = "true"
    for level in range(depth):
        expression = f"{listed}.all(v{level}, {expression})"
    return expression


def test_comprehensions_nested_two_deep_compile() -> None:
    compile_condition(_nested(MAX_COMPREHENSION_DEPTH), record_fields=None)
    chained = 'record.tags.map(t, t + "x").filter(t, t != "y").exists(t, t == "z")'
    compile_condition(chained, record_fields=FIELDS)  # chained, not nested: depth 1


@pytest.mark.parametrize("depth", [3, 7])
def test_comprehensions_nested_deeper_are_refused_before_compiling(depth: int) -> None:
    with pytest.raises(ConditionError) as refused:
        compile_condition(_nested(depth), record_fields=None)
    assert any(f"nested {depth} deep" in m for m in refused.value.messages)
    assert all(m.startswith("CEL limit") for m in refused.value.messages)


def test_too_many_comprehensions_are_refused() -> None:
    source = " && ".join(f'record.tags.exists(t{i}, t{i} == "x")' for i in range(5))
    with pytest.raises(ConditionError, match="5 comprehensions; at most 4"):
        compile_condition(source, record_fields=FIELDS)
    compile_condition(source.rsplit(" && ", 1)[0], record_fields=FIELDS)  # four are fine


def test_size_and_bracket_nesting_limits() -> None:
    long = "record.name == '" + "x" * MAX_CONDITION_CHARS + "'"
    with pytest.raises(ConditionError, match=f"at most {MAX_CONDITION_CHARS}"):
        compile_condition(long, record_fields=FIELDS)
    deep = "(" * (MAX_NESTING + 1) + "true" + ")" * (MAX_NESTING + 1)
    with pytest.raises(ConditionError, match=f"nested {MAX_NESTING + 1} deep"):
        compile_condition(deep, record_fields=FIELDS)
    compile_condition("(" * MAX_NESTING + "true" + ")" * MAX_NESTING, record_fields=FIELDS)


def test_brackets_and_macro_names_inside_strings_and_comments_do_not_count() -> None:
    text = '"' + "(((" * 20 + '.all(x, .exists(y, .map(z, "' + " == record.name"
    compile_condition(text, record_fields=FIELDS)
    compile_condition("record.name == 'x' // .all(a, .all(b, .all(c,", record_fields=FIELDS)
