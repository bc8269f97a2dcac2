"""MappedAdapter over httpx2.MockTransport: envelopes, not-found, id checks, search paging.

The configs are the real agency files (only the base URL and connection settings change),
the upstream answers are hand-written native bodies as NATIVE.md describes them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import parse_qs

import httpx2
import orjson
import pytest

from adapters.base import (
    MappingError,
    UnsupportedOperation,
    UpstreamProtocolError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from adapters.config import AgencyConfig

MockAdapter = Callable[..., tuple[Any, Any]]

CASE_ROW = {
    "XXZJBH": "C00000042",
    "AJBH": "A640104000000202103000042",
    "AJMC": "张某盗窃案",
    "AJLBDM": "050200",
    "LASJ": "20210305",
    "XZQHDM": "640104",
    "AJZT": "50",
    "BLDWDM": "GA640104,JC640104,FY640104",
    "FYAH": "",
    "MJ": "0",
    "JYAQ": "简要案情",
}
CASE_STANDARD = {
    "case_id": "C00000042",
    "police_case_number": "A640104000000202103000042",
    "case_name": "张某盗窃案",
    "case_category": "050200",
    "filing_date": "2021-03-05",
    "division": "640104",
    "stage": "EXECUTION",
    "handling_agencies": ["GA640104", "JC640104", "FY640104"],
    "secrecy_mark": "NONE",
    "brief": "简要案情",
}


def police(data: Any, code: int = 0, msg: str = "ok", status: int = 200) -> httpx2.Response:
    body = {"code": code, "msg": msg, "data": data}
    return httpx2.Response(status, content=orjson.dumps(body))


def row(case_id: str) -> dict[str, str]:
    return {**CASE_ROW, "XXZJBH": case_id}


def query(request: httpx2.Request) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(request.url.query.decode()).items()}


@pytest.fixture
def police_config(agency_configs: dict[str, AgencyConfig]) -> AgencyConfig:
    return agency_configs["public_security"]


# --- fetch ------------------------------------------------------------------------------------


async def test_fetch_maps_a_native_record(
    mock_adapter: MockAdapter, police_config: AgencyConfig
) -> None:
    adapter, transport = mock_adapter(police_config, lambda _: police(CASE_ROW))
    assert await adapter.fetch("case", "C00000042") == CASE_STANDARD
    request = transport.requests[0]
    assert request.url.path == "/api/v1/ajxx/C00000042"
    assert request.headers["X-Api-Key"] == "adapter-test-secret-7f3a"


async def test_fetch_404_is_none(mock_adapter: MockAdapter, police_config: AgencyConfig) -> None:
    adapter, _ = mock_adapter(police_config, lambda _: police(None, 404, "not found", 404))
    assert await adapter.fetch("case", "C00000042") is None


async def test_fetch_envelope_not_found_code_is_none(
    mock_adapter: MockAdapter, police_config: AgencyConfig
) -> None:
    adapter, _ = mock_adapter(police_config, lambda _: police(None, 404, "无此案件"))
    assert await adapter.fetch("case", "C00000042") is None


async def test_fetch_empty_data_is_none(
    mock_adapter: MockAdapter, police_config: AgencyConfig
) -> None:
    adapter, _ = mock_adapter(police_config, lambda _: police({}))
    assert await adapter.fetch("case", "C00000042") is None


async def test_envelope_error_code_is_a_protocol_error_with_the_message(
    mock_adapter: MockAdapter, police_config: AgencyConfig
) -> None:
    adapter, _ = mock_adapter(police_config, lambda _: police(None, 5001, "数据库维护中"))
    with pytest.raises(UpstreamProtocolError) as caught:
        await adapter.fetch("case", "C00000042")
    assert caught.value.agency == "public_security"
    assert "数据库维护中" in caught.value.message
    assert "5001" in caught.value.message


async def test_an_answer_without_the_envelope_is_a_protocol_error(
    mock_adapter: MockAdapter, police_config: AgencyConfig
) -> None:
    adapter, _ = mock_adapter(police_config, lambda _: httpx2.Response(200, json=[CASE_ROW]))
    with pytest.raises(UpstreamProtocolError, match="no envelope status 'code'"):
        await adapter.fetch("case", "C00000042")


async def test_http_500_is_a_protocol_error_naming_the_agency(
    mock_adapter: MockAdapter, police_config: AgencyConfig
) -> None:
    adapter, transport = mock_adapter(police_config, lambda _: police(None, 500, "err", 500))
    with pytest.raises(UpstreamProtocolError) as caught:
        await adapter.fetch("case", "C00000042")
    assert caught.value.agency == "public_security"
    assert caught.value.upstream_status == 500
    assert "HTTP 500" in str(caught.value)
    assert transport.calls == 1


async def test_retries_503_then_fetches(
    mock_adapter: MockAdapter, police_config: AgencyConfig
) -> None:
    answers = iter([police(None, 503, "busy", 503), police(None, 503, "busy", 503)])

    def handler(_: httpx2.Request) -> httpx2.Response:
        return next(answers, police(CASE_ROW))

    adapter, transport = mock_adapter(police_config, handler, retry_backoff_seconds=0)
    assert await adapter.fetch("case", "C00000042") == CASE_STANDARD
    assert transport.calls == 3


@pytest.mark.parametrize(
    "body", [b"\x00\x8b\x1f<html>502 Bad Gateway</html>", b"", b'{"code":0,"msg":"ok","data":']
)
async def test_garbage_body_is_a_protocol_error(
    mock_adapter: MockAdapter, police_config: AgencyConfig, body: bytes
) -> None:
    adapter, _ = mock_adapter(police_config, lambda _: httpx2.Response(200, content=body))
    with pytest.raises(UpstreamProtocolError, match="not JSON"):
        await adapter.fetch("case", "C00000042")


async def test_garbage_xml_is_a_protocol_error(
    mock_adapter: MockAdapter, agency_configs: dict[str, AgencyConfig]
) -> None:
    bomb = b'<!DOCTYPE r [<!ENTITY a "aaaa">]><r>&a;</r>'
    for body in (b"<Response><Code>0</Code>", bomb):
        adapter, _ = mock_adapter(
            agency_configs["court"], lambda _, body=body: httpx2.Response(200, content=body)
        )
        with pytest.raises(UpstreamProtocolError, match="XML"):
            await adapter.fetch("judgment", "JD0000004201")


async def test_huge_body_is_a_protocol_error(
    mock_adapter: MockAdapter, police_config: AgencyConfig
) -> None:
    async def endless() -> AsyncIterator[bytes]:
        yield b'{"code":0,"msg":"ok","data":{"rows":['
        while True:
            yield orjson.dumps(CASE_ROW) + b","

    adapter, _ = mock_adapter(
        police_config, lambda _: httpx2.Response(200, content=endless()), max_body_bytes=65536
    )
    with pytest.raises(UpstreamProtocolError, match="65536-byte limit"):
        await adapter.search("case", {}, limit=10, after=None)


async def test_hang_is_a_timeout(mock_adapter: MockAdapter, police_config: AgencyConfig) -> None:
    async def hang(_: httpx2.Request) -> httpx2.Response:
        await asyncio.sleep(30)
        return police(CASE_ROW)

    adapter, _ = mock_adapter(police_config, hang, timeout_seconds=0.2)
    started = time.perf_counter()
    with pytest.raises(UpstreamTimeout) as caught:
        await adapter.fetch("case", "C00000042")
    assert time.perf_counter() - started < 1
    assert caught.value.agency == "public_security"


async def test_refused_is_unavailable(
    mock_adapter: MockAdapter, police_config: AgencyConfig
) -> None:
    def refuse(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("Connection refused", request=request)

    adapter, transport = mock_adapter(police_config, refuse, retry_backoff_seconds=0)
    with pytest.raises(UpstreamUnavailable):
        await adapter.fetch("case", "C00000042")
    assert transport.calls == 3


async def test_a_different_record_than_asked_is_a_mapping_error(
    mock_adapter: MockAdapter, police_config: AgencyConfig
) -> None:
    adapter, _ = mock_adapter(police_config, lambda _: police(row("C00000043")))
    with pytest.raises(MappingError) as caught:
        await adapter.fetch("case", "C00000042")
    assert caught.value.field_name == "case_id"


async def test_unparseable_native_value_is_a_mapping_error(
    mock_adapter: MockAdapter, police_config: AgencyConfig
) -> None:
    adapter, _ = mock_adapter(police_config, lambda _: police({**CASE_ROW, "LASJ": "2021-3-5"}))
    with pytest.raises(MappingError) as caught:
        await adapter.fetch("case", "C00000042")
    assert caught.value.field_name == "filing_date"


@pytest.mark.parametrize(
    "record_id",
    [
        "C0000/0042",
        "..",
        "../etc/passwd",
        "C00000042/../C00000043",
        "%2F",
        "C%2F..",
        "C 42",
        " C00000042",
        "C00000042\n",
        "案件42",
        "Cé",
        "",
        ".hidden",
        "x" * 65,
        "C?x=1",
        "C#x",
        "C\\x",
    ],
)
async def test_unsafe_ids_never_reach_the_agency(
    mock_adapter: MockAdapter, police_config: AgencyConfig, record_id: str
) -> None:
    adapter, transport = mock_adapter(police_config, lambda _: police(CASE_ROW))
    assert await adapter.fetch("case", record_id) is None
    assert transport.calls == 0


async def test_unknown_resource_is_unsupported(
    mock_adapter: MockAdapter, police_config: AgencyConfig
) -> None:
    adapter, _ = mock_adapter(police_config, lambda _: police(CASE_ROW))
    with pytest.raises(UnsupportedOperation):
        await adapter.fetch("judgment", "JD0000004201")
    with pytest.raises(UnsupportedOperation):
        await adapter.search("judgment", {}, limit=1, after=None)


# --- search -----------------------------------------------------------------------------------


def police_pages(ids: list[str]) -> Callable[[httpx2.Request], httpx2.Response]:
    """A police system holding cases ``ids``: honours rows / after like the real one."""

    def handler(request: httpx2.Request) -> httpx2.Response:
        params = query(request)
        rows = int(params["rows"])
        after = params.get("after")
        selected = [i for i in ids if after is None or i > after]
        page = selected[:rows]
        more = len(selected) > rows
        return police({"rows": [row(i) for i in page], "next": page[-1] if more else ""})

    return handler


async def test_search_renders_filters_limit_and_after(
    mock_adapter: MockAdapter, agency_configs: dict[str, AgencyConfig]
) -> None:
    adapter, transport = mock_adapter(
        agency_configs["justice"],
        lambda _: httpx2.Response(
            200, content=orjson.dumps({"status": "success", "data": [], "next": None})
        ),
    )
    page = await adapter.search(
        "community_correction",
        {"case_id": "C00000042", "person_id": "P0000004201"},
        limit=20,
        after="CC0000004100",
    )
    assert page.records == []
    assert page.next_after is None
    request = transport.requests[0]
    assert request.url.path == "/sqjz/api/jzdx"
    assert query(request) == {
        "ajbh": "C00000042",
        "rybh": "P0000004201",
        "num": "21",
        "after": "CC0000004100",
    }
    assert request.headers["X-Sfj-Token"] == "adapter-test-secret-7f3a"


async def test_search_pages_with_limit_plus_one(
    mock_adapter: MockAdapter, police_config: AgencyConfig
) -> None:
    ids = [f"C{n:08d}" for n in range(7)]
    adapter, transport = mock_adapter(police_config, police_pages(ids))
    seen: list[str] = []
    after = None
    while True:
        page = await adapter.search("case", {}, limit=3, after=after)
        seen += [r["case_id"] for r in page.records]
        assert len(page.records) <= 3
        if page.next_after is None:
            break
        after = page.next_after
    assert seen == ids
    assert transport.calls == 3
    assert {query(r)["rows"] for r in transport.requests} == {"4"}


async def test_search_at_the_agency_maximum_never_drops_records(
    mock_adapter: MockAdapter, agency_configs: dict[str, AgencyConfig]
) -> None:
    config = agency_configs["public_security"]
    search = config.resources["case"].search
    assert search is not None
    small = config.model_copy(
        update={
            "resources": {
                **config.resources,
                "case": config.resources["case"].model_copy(
                    update={"search": search.model_copy(update={"max_limit": 3})}
                ),
            }
        }
    )
    ids = [f"C{n:08d}" for n in range(7)]
    adapter, transport = mock_adapter(small, police_pages(ids))
    seen: list[str] = []
    after = None
    for _ in range(10):
        page = await adapter.search("case", {}, limit=5, after=after)  # 5 > max_limit 3
        seen += [r["case_id"] for r in page.records]
        if page.next_after is None:
            break
        after = page.next_after
    assert seen == ids
    assert all(query(r)["rows"] == "3" for r in transport.requests)


async def test_search_filter_values_are_rendered_natively(
    mock_adapter: MockAdapter, agency_configs: dict[str, AgencyConfig]
) -> None:
    config = agency_configs["public_security"]
    case = config.resources["case"]
    assert case.search is not None
    # a deployment that lets the gateway filter cases by stage and filing date
    params = {**case.search.params, "stage": "AJZT", "filing_date": "LASJ"}
    extended = config.model_copy(
        update={
            "resources": {
                "case": case.model_copy(
                    update={"search": case.search.model_copy(update={"params": params})}
                )
            }
        }
    )
    adapter, transport = mock_adapter(extended, police_pages([]))
    await adapter.search(
        "case", {"stage": "EXECUTION", "filing_date": "2021-03-05"}, limit=1, after=None
    )
    assert query(transport.requests[0])["AJZT"] == "50"
    assert query(transport.requests[0])["LASJ"] == "20210305"


async def test_search_by_an_unmapped_filter_is_unsupported(
    mock_adapter: MockAdapter, police_config: AgencyConfig
) -> None:
    adapter, transport = mock_adapter(police_config, police_pages([]))
    with pytest.raises(UnsupportedOperation, match="case_name"):
        await adapter.search("case", {"case_name": "张某"}, limit=1, after=None)
    assert transport.calls == 0


async def test_search_records_that_are_not_a_list(
    mock_adapter: MockAdapter, police_config: AgencyConfig
) -> None:
    adapter, _ = mock_adapter(police_config, lambda _: police({"rows": "oops", "next": ""}))
    with pytest.raises(UpstreamProtocolError, match="not a list"):
        await adapter.search("case", {}, limit=1, after=None)


async def test_search_record_without_id_is_a_mapping_error(
    mock_adapter: MockAdapter, police_config: AgencyConfig
) -> None:
    adapter, _ = mock_adapter(
        police_config, lambda _: police({"rows": [{**CASE_ROW, "XXZJBH": ""}], "next": ""})
    )
    with pytest.raises(MappingError):
        await adapter.search("case", {}, limit=1, after=None)


# --- the XML court system ---------------------------------------------------------------------

JUDGMENT_XML = (
    "<Judgment><WSID>{id}</WSID><AJID>C00000042</AJID><AH>(2021)宁0104刑初123号</AH>"
    "<FYDM>FY640104</FYDM><BGRID>P0000004201</BGRID><BGRXM>张三</BGRXM><PJJG>1</PJJG>"
    "<XFLX>103</XFLX><XQ>36</XQ><HXQ /><PJRQ>2021-09-01</PJRQ><SXRQ /><PJZY>摘要</PJZY>"
    "</Judgment>"
)


def court_xml(inner: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Response><Code>0</Code><Message>ok</Message>{inner}</Response>"
    ).encode()


async def test_court_xml_fetch_and_single_record_page(
    mock_adapter: MockAdapter, agency_configs: dict[str, AgencyConfig]
) -> None:
    one = JUDGMENT_XML.format(id="JD0000004201")

    def handler(request: httpx2.Request) -> httpx2.Response:
        if request.url.path.endswith("/JD0000004201"):
            return httpx2.Response(200, content=court_xml(one))
        return httpx2.Response(200, content=court_xml(f"<Judgments>{one}</Judgments><NextAfter />"))

    adapter, transport = mock_adapter(agency_configs["court"], handler)
    expected = {
        "judgment_id": "JD0000004201",
        "case_id": "C00000042",
        "court_case_number": "(2021)宁0104刑初123号",
        "court": "FY640104",
        "defendant_id": "P0000004201",
        "defendant_name": "张三",
        "verdict": "GUILTY",
        "penalty_type": "FIXED_TERM",
        "term_months": 36,
        "judgment_date": "2021-09-01",
        "summary": "摘要",
    }
    assert await adapter.fetch("judgment", "JD0000004201") == expected
    assert transport.requests[0].headers["X-Court-Key"] == "adapter-test-secret-7f3a"
    page = await adapter.search("judgment", {"case_id": "C00000042"}, limit=5, after=None)
    assert page.records == [expected]
    assert page.next_after is None
    assert query(transport.requests[1]) == {"AJID": "C00000042", "count": "6"}


async def test_court_xml_empty_page_and_envelope_error(
    mock_adapter: MockAdapter, agency_configs: dict[str, AgencyConfig]
) -> None:
    adapter, _ = mock_adapter(
        agency_configs["court"],
        lambda _: httpx2.Response(200, content=court_xml("<Judgments /><NextAfter />")),
    )
    page = await adapter.search("judgment", {}, limit=5, after=None)
    assert page.records == []
    error = (
        b"<Response><Code>500</Code><Message>\xe5\xba\x93\xe5\xbf\x99</Message></Response>"  # 库忙
    )
    adapter, _ = mock_adapter(
        agency_configs["court"], lambda _: httpx2.Response(200, content=error)
    )
    with pytest.raises(UpstreamProtocolError, match="库忙"):
        await adapter.fetch("judgment", "JD0000004201")


# --- health -----------------------------------------------------------------------------------


async def test_health(mock_adapter: MockAdapter, police_config: AgencyConfig) -> None:
    adapter, transport = mock_adapter(
        police_config, lambda _: httpx2.Response(200, json={"status": "UP"})
    )
    health = await adapter.health()
    assert health.ok
    assert health.latency_ms is not None
    assert health.circuit == "closed"
    assert transport.requests[0].url.path == "/health"

    def refuse(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("Connection refused", request=request)

    adapter, _ = mock_adapter(police_config, refuse, retries=0)
    health = await adapter.health()
    assert not health.ok
    assert health.detail is not None
