"""The declarative mapping engine and the agency-file schema (no network)."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters import mapping
from adapters.base import MappingError
from adapters.config import (
    AgencyConfig,
    AgencyConfigError,
    BasicAuth,
    FieldMapConfig,
    ResourceMapConfig,
    load_agency_configs,
)
from adapters.mapping import _MISSING, CompiledResourceMap, compile_path, get_path
from gateway.standard import Standard
from sandbox.systems import AGENCY_KINDS, DEFAULT_PORTS


def resource_map(fields: dict[str, Any], **search: Any) -> CompiledResourceMap:
    config: dict[str, Any] = {
        "id_field": "id",
        "fetch": {"path": "/things/{id}"},
        "fields": {"id": "ID", **fields},
    }
    if search:
        config["search"] = {"path": "/things", "limit_param": "n", "after_param": "after", **search}
    return CompiledResourceMap("test_agency", "thing", ResourceMapConfig.model_validate(config))


def convert(spec: Any, value: Any) -> Any:
    """The standard value of one native ``value`` under field mapping ``spec`` (from X)."""
    rule = {"from": "X", **spec} if isinstance(spec, dict) else "X"
    record = resource_map({"f": rule}).to_standard({"ID": "1", "X": value})
    return record.get("f", "<absent>")


# --- conversions -----------------------------------------------------------------------------


def test_plain_rename_and_strip() -> None:
    assert convert(None, "  张三 ") == "张三"
    assert convert({"strip": False}, " a ") == " a "


def test_nested_path() -> None:
    mapping = resource_map({"division": "AJFSD.XZQHDM", "deep": "a.b.c"})
    record = mapping.to_standard({"ID": "1", "AJFSD": {"XZQHDM": "640104"}, "a": {"b": {}}})
    assert record == {"id": "1", "division": "640104"}


def test_codes_translate_and_unknown_code_passes_through() -> None:
    rule = {"codes": {"10": "INVESTIGATION", "20": "ARREST_REVIEW"}}
    assert convert(rule, "10") == "INVESTIGATION"
    assert convert(rule, "77") == "77"  # left for standard validation to refuse


def test_codes_on_json_integers() -> None:
    rule = {"codes": {"1": "APPROVED", "2": "DISAPPROVED"}}
    assert convert(rule, 1) == "APPROVED"
    assert convert(rule, 9) == 9


@pytest.mark.parametrize(
    ("date_format", "native", "standard"),
    [
        ("%Y%m%d", "20210305", "2021-03-05"),
        ("%Y年%m月%d日", "2021年03月05日", "2021-03-05"),
        ("%Y-%m-%d %H:%M:%S", "2021-03-05 00:00:00", "2021-03-05"),
        ("%Y-%m-%d", "2021-03-05", "2021-03-05"),
        ("iso", "2021-03-05", "2021-03-05"),
        ("iso-datetime", "2021-03-05T00:00:00+08:00", "2021-03-05"),
        ("iso-datetime", "2021-03-05T23:30:00-05:00", "2021-03-05"),  # the local date part
    ],
)
def test_dates(date_format: str, native: str, standard: str) -> None:
    assert convert({"date_format": date_format}, native) == standard


@pytest.mark.parametrize(
    ("date_format", "native"),
    [("%Y%m%d", "2021-03-05"), ("%Y年%m月%d日", "20210305"), ("iso-datetime", "yesterday")],
)
def test_unparseable_date_is_a_mapping_error_naming_the_field(
    date_format: str, native: str
) -> None:
    mapping = resource_map({"filing_date": {"from": "LASJ", "date_format": date_format}})
    with pytest.raises(MappingError) as caught:
        mapping.to_standard({"ID": "1", "LASJ": native})
    assert caught.value.field_name == "filing_date"
    assert caught.value.agency == "test_agency"
    assert "thing.filing_date" in caught.value.message
    assert "LASJ" in caught.value.message
    assert native not in caught.value.message  # values may be personal data: never echoed


def test_booleans() -> None:
    rule = {"true_values": ["1"], "false_values": ["0"]}
    assert convert(rule, "1") is True
    assert convert(rule, "0") is False
    assert convert(rule, "Y") == "Y"  # left for validation to refuse


def test_split_lists() -> None:
    assert convert({"split": ","}, "GA640104,JC640104, FY640104,") == [
        "GA640104",
        "JC640104",
        "FY640104",
    ]


def test_split_list_with_codes() -> None:
    assert convert({"split": ",", "codes": {"a": "A"}}, "a,b") == ["A", "b"]


def test_list_of_objects_path() -> None:
    mapping = resource_map({"defendant_ids": {"from": "defendants[].personId", "type": "list"}})
    native = {"ID": "1", "defendants": [{"personId": "P1"}, {"other": 1}, {"personId": "P2"}]}
    assert mapping.to_standard(native)["defendant_ids"] == ["P1", "P2"]
    # one child element (XML) reads as one object: still a list of one
    one = {"ID": "1", "defendants": {"personId": "P1"}}
    assert mapping.to_standard(one)["defendant_ids"] == ["P1"]


def test_get_path_over_lists() -> None:
    data = {"a": [{"b": {"c": 1}}, {"b": {"c": 2}}], "e": "", "s": "x"}
    assert get_path(data, "a[].b.c") == [1, 2]
    assert get_path(data, "e[].b") == []
    assert get_path(data, "s[].b") is get_path({}, "missing")
    assert get_path(data, "") is data


def test_type_list_wraps_a_single_value() -> None:
    assert convert({"type": "list"}, "盗窃罪") == ["盗窃罪"]
    assert convert({"type": "list"}, ["a", "b"]) == ["a", "b"]


def test_integers() -> None:
    assert convert({"type": "integer"}, "36") == 36
    assert convert({"type": "integer"}, " 36 ") == 36
    assert convert({"type": "integer"}, 12) == 12
    assert convert({"type": "integer"}, "") == "<absent>"  # empty element = null
    assert convert({"type": "integer"}, "3.5") == "3.5"  # not an integer: validation refuses


def test_string_type() -> None:
    assert convert({"type": "string"}, 42) == "42"
    assert convert({"type": "string"}, True) is True


def _reference_convert(spec: FieldMapConfig, value: Any) -> Any:
    """The conversion as first written, step by step, each per-item step applied over a list
    on its own: the oracle for the fused pipeline."""

    def each(step: Any) -> Any:
        return lambda v: [step(x) for x in v] if isinstance(v, list) else step(v)

    steps: list[Any] = []
    if spec.strip:
        steps.append(each(mapping._strip))
    if spec.split is not None:
        sep = spec.split
        steps.append(
            lambda v: [p.strip() for p in v.split(sep) if p.strip()] if isinstance(v, str) else v
        )
    if spec.codes is not None:
        codes = dict(spec.codes)
        steps.append(each(lambda v: codes.get(str(v), v)))
    if spec.date_format is not None:
        steps.append(each(mapping._date_parser(spec.date_format)))
    if spec.true_values is not None or spec.false_values is not None:
        truthy, falsy = set(spec.true_values or []), set(spec.false_values or [])

        def to_bool(v: Any) -> Any:
            text = str(v).strip()
            return True if text in truthy else False if text in falsy else v

        steps.append(to_bool)
    if spec.type == "integer":
        steps.append(each(mapping._to_int))
    elif spec.type == "string":
        steps.append(each(mapping._to_str))
    elif spec.type == "list":
        steps.append(mapping._to_list)
    for step in steps:
        value = step(value)
    return value


_scalars = st.one_of(
    # values the rules act on (codes, dates, booleans, padding), then anything
    st.sampled_from([" 1", "1 ", " 2", "0", "20240105", " 20240105 ", "2024-01-05", "true"]),
    st.text(alphabet=" 0123456789-X,ab审", max_size=8),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=False, width=32),
    st.booleans(),
    st.none(),
)
_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=3), max_leaves=6)
_specs = st.builds(
    dict,
    strip=st.booleans(),
    split=st.sampled_from([None, ",", "-"]),
    codes=st.sampled_from([None, {"1": "ONE", " 2": "TWO", "0": "ZERO"}]),
    date_format=st.sampled_from([None, "%Y%m%d", "iso"]),
    true_values=st.sampled_from([None, ["1", "true"]]),
    false_values=st.sampled_from([None, ["0"]]),
    type=st.sampled_from([None, "string", "integer", "list"]),
)


@given(spec=_specs, value=_values)
def test_the_fused_conversion_is_the_step_by_step_one(spec: dict[str, Any], value: Any) -> None:
    config = FieldMapConfig.model_validate({"from": "X", **spec})
    try:
        expected: Any = ("value", _reference_convert(config, value))
    except (ValueError, TypeError) as exc:
        expected = ("error", type(exc))
    try:
        got: Any = ("value", mapping._compile_field("f", config).convert(value))
    except (ValueError, TypeError) as exc:
        got = ("error", type(exc))
    assert got == expected


def test_null_empty_and_missing_fields_are_absent() -> None:
    mapping = resource_map({"a": "A", "b": "B", "c": "C"})
    assert mapping.to_standard({"ID": "1", "A": None, "B": ""}) == {"id": "1"}


def test_a_record_that_is_not_an_object() -> None:
    with pytest.raises(MappingError):
        resource_map({}).to_standard(["not", "an", "object"])


# --- standard filter values → native ---------------------------------------------------------


def test_native_filter_reverses_codes_dates_and_booleans() -> None:
    mapping = resource_map(
        {
            "stage": {"from": "AJZT", "codes": {"10": "INVESTIGATION", "50": "EXECUTION"}},
            "start_date": {"from": "KS", "date_format": "%Y年%m月%d日"},
            "filing_date": {"from": "LA", "date_format": "%Y%m%d"},
            "request_date": {"from": "RQ", "date_format": "iso-datetime"},
            "is_minor": {"from": "M", "true_values": ["1", "Y"], "false_values": ["0"]},
            "name": "XM",
        }
    )
    assert mapping.native_filter("stage", "EXECUTION") == "50"
    assert mapping.native_filter("stage", "UNKNOWN") == "UNKNOWN"
    assert mapping.native_filter("start_date", "2021-03-05") == "2021年03月05日"
    assert mapping.native_filter("filing_date", "2021-03-05") == "20210305"
    assert mapping.native_filter("request_date", "2021-03-05") == "2021-03-05"
    assert mapping.native_filter("filing_date", "not a date") == "not a date"
    assert mapping.native_filter("is_minor", "true") == "1"
    assert mapping.native_filter("is_minor", "false") == "0"
    assert mapping.native_filter("name", "张三") == "张三"
    assert mapping.native_filter("unmapped", "x") == "x"


def test_several_native_codes_for_one_standard_code() -> None:
    rule = {"from": "XFLX", "codes": {"106": "DEATH", "107": "DEATH", "104": "LIFE"}}
    mapping = resource_map({"penalty_type": rule})
    assert mapping.to_standard({"ID": "1", "XFLX": "107"})["penalty_type"] == "DEATH"
    assert mapping.native_filter("penalty_type", "DEATH") == "106"  # the first listed wins


# --- the agency-file schema ------------------------------------------------------------------


def test_fetch_path_needs_an_id_placeholder() -> None:
    with pytest.raises(ValueError, match=r"\{id\}"):
        ResourceMapConfig.model_validate(
            {"id_field": "id", "fetch": {"path": "/things"}, "fields": {"id": "ID"}}
        )


def test_id_field_must_be_mapped() -> None:
    with pytest.raises(ValueError, match="id_field"):
        ResourceMapConfig.model_validate(
            {"id_field": "id", "fetch": {"path": "/t/{id}"}, "fields": {"x": "X"}}
        )


def test_search_filters_must_name_mapped_fields() -> None:
    with pytest.raises(ValueError, match="cas_id"):
        resource_map({"case_id": "AJ"}, params={"cas_id": "AJ"})


def test_field_rules_are_strict() -> None:
    with pytest.raises(ValueError, match="date_fmt"):
        FieldMapConfig.model_validate({"from": "X", "date_fmt": "%Y"})


def test_basic_auth_kind() -> None:
    config = AgencyConfig.model_validate(
        {
            "agency": "prison",
            "title": "t",
            "format": "json",
            "connection": {"base_url": "http://x"},
            "auth": {"kind": "basic", "username": "gateway", "secret": "prison"},
            "resources": {},
        }
    )
    assert isinstance(config.auth, BasicAuth)
    assert config.auth.username == "gateway"


def test_loader_reports_the_file_and_the_problem(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("agency: x\ntitle: t\nformat: csv\n", encoding="utf-8")
    with pytest.raises(AgencyConfigError, match=r"(?s)bad\.yaml.*format"):
        load_agency_configs(tmp_path)
    (tmp_path / "bad.yaml").write_text("agency: [unclosed\n", encoding="utf-8")
    with pytest.raises(AgencyConfigError, match="not valid YAML"):
        load_agency_configs(tmp_path)
    with pytest.raises(AgencyConfigError, match="does not exist"):
        load_agency_configs(tmp_path / "missing")


def test_duplicate_agency_is_refused(
    tmp_path: Path, agency_configs: dict[str, AgencyConfig]
) -> None:
    source = agency_configs["justice"].source_file
    assert source is not None
    text = source.read_text(encoding="utf-8")
    (tmp_path / "a.yaml").write_text(text, encoding="utf-8")
    (tmp_path / "b.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(AgencyConfigError, match="defined twice"):
        load_agency_configs(tmp_path)


# --- the five agency files -------------------------------------------------------------------


def test_one_file_per_agency(agency_configs: dict[str, AgencyConfig]) -> None:
    assert sorted(agency_configs) == sorted(AGENCY_KINDS)
    for kind, config in agency_configs.items():
        assert config.source_file is not None
        assert config.source_file.name == f"{kind}.yaml"


def test_every_standard_resource_is_mapped_by_its_owner(
    agency_configs: dict[str, AgencyConfig], standard: Standard
) -> None:
    served = {
        resource: kind for kind, config in agency_configs.items() for resource in config.resources
    }
    assert served == {r.name: r.owner for r in standard.resources}


def test_every_standard_field_is_mapped(
    agency_configs: dict[str, AgencyConfig], standard: Standard
) -> None:
    for config in agency_configs.values():
        for name, resource in config.resources.items():
            spec = standard.resource(name)
            assert set(resource.fields) == set(spec.field_names), name
            assert resource.id_field == spec.id_field
            filterable = {f.name for f in spec.fields if f.filterable}
            assert resource.search is not None
            assert set(resource.search.params) == filterable, name


def test_connection_defaults(agency_configs: dict[str, AgencyConfig]) -> None:
    for kind, config in agency_configs.items():
        connection = config.connection
        assert connection.base_url == f"http://127.0.0.1:{DEFAULT_PORTS[kind]}"
        assert connection.health_path == "/health"
        assert connection.timeout_seconds == 3
        assert connection.retries == 2
        assert connection.max_body_bytes == 4 * 1024 * 1024
        assert getattr(config.auth, "secret", None) == kind  # credential named after the agency


# --- compile_path: the same reads as get_path --------------------------------------------------

_KEYS = st.sampled_from(["a", "b", "c", "d[]"])
_LEAVES = st.one_of(st.none(), st.just(""), st.integers(), st.text(max_size=3))
_TREES = st.recursive(
    _LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), inner, max_size=4),
        st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), inner, max_size=4).map(
            MappingProxyType
        ),
    ),
    max_leaves=12,
)


@given(data=_TREES, steps=st.lists(_KEYS, max_size=4))
def test_compiled_path_reads_as_get_path(data: Any, steps: list[str]) -> None:
    """Oracle: get_path. Plain dicts, other mappings (read-only views) and non-mappings."""
    path = ".".join(steps)
    assert compile_path(path)(data) == get_path(data, path)
    assert (compile_path(path)(data) is _MISSING) == (get_path(data, path) is _MISSING)


# --- dates in an agency's format: the fast path reads as strptime ------------------------------

_AGENCY_DATE_FORMATS = [
    "%Y%m%d",
    "%Y-%m-%d",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT00:00:00+08:00",
    "%Y年%m月%d日",
]
_DIGITS = st.text(alphabet="0123456789", min_size=1, max_size=4)


@st.composite
def _date_texts(draw: st.DrawFn, fmt: str) -> str:
    """Text shaped like ``fmt``: numbers of any width (0-4 digits, out of range too), literals
    kept or case-changed, now and then noise."""
    out = []
    rest = fmt
    while rest:
        head, percent, rest = rest.partition("%")
        out.append(draw(st.sampled_from([head, head.lower(), head + " "])))
        if percent:
            out.append(draw(_DIGITS))
            rest = rest[1:]
    text = "".join(out)
    real = draw(
        st.datetimes(min_value=datetime(1000, 1, 1), max_value=datetime(2200, 12, 31))
    ).strftime(fmt)
    return draw(
        st.one_of(st.just(real), st.just(text), st.just(" " + text + " "), st.text(max_size=12))
    )


@given(data=st.data(), fmt=st.sampled_from(_AGENCY_DATE_FORMATS))
def test_dates_read_as_strptime_reads_them(data: st.DataObject, fmt: str) -> None:
    """Oracle: ``datetime.strptime``, the way every agency date was read before."""
    from adapters.mapping import _date_parser

    text = data.draw(_date_texts(fmt))
    try:
        expected = datetime.strptime(text.strip(), fmt).date().isoformat()
    except ValueError as refused:
        with pytest.raises(ValueError, match=re.escape(str(refused))):
            _date_parser(fmt)(text)
    else:
        assert _date_parser(fmt)(text) == expected
