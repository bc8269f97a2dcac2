"""MappedAdapter.deliver and the outbox's push over httpx2.MockTransport (issue 15).

The configs are the real agency files; the answers are hand-written native bodies
(sandbox/NATIVE.md § Inbound deliveries). What the push makes of each failure decides whether
the outbox retries (``retry``) or gives up (``refused``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
import orjson
import pytest
from pydantic import ValidationError

from adapters.base import (
    Delivered,
    MappingError,
    OutboundDelivery,
    UnsupportedOperation,
    UpstreamProtocolError,
)
from adapters.config import AgencyConfig
from adapters.transports.codecs import decode_body, encode_body
from gateway.deliveries.outbox import PushJob, PushOutcome
from gateway.exchange.push import adapter_push
from gateway.exchange.upstream import AgencyAdapters
from gateway.standard import Standard

MockAdapter = Callable[..., tuple[Any, Any]]

INDICTMENT = {
    "indictment_id": "IN0000002001",
    "case_id": "C00000020",
    "document_number": "宁银兴检刑诉〔2024〕1号",
    "defendant_ids": ["P0000002001", "P0000002002"],
    "charges": ["盗窃罪"],
    "indictment_date": "2024-05-06",
    "court": "FY640104",
}
PDF = {"name": "a.pdf", "media_type": "application/pdf", "content_base64": "JVBERi0="}


def _RULES(sender_kind: str, recipient_kind: str, kind: str) -> bool:  # noqa: N802
    """The delivery rule these tests push under (the policy's answer, at the boundary)."""
    return (sender_kind, recipient_kind, kind) == ("procuratorate", "court", "indictment")


def _delivery(resource: str = "indictment", record: dict[str, Any] = INDICTMENT) -> Any:
    return OutboundDelivery(
        id="DL0123",
        kind="indictment",
        from_agency="JC640104",
        to_agency="FY640104",
        case_number="(2024)宁0104刑初465号",
        resource=resource,
        record=record,
        attachments=[PDF, {**PDF, "name": "b.pdf"}],
    )


def court(code: str = "0", receipt: str | None = "FYQS00000001", status: int = 200) -> Any:
    inner = f"<QSBH>{receipt}</QSBH>" if receipt else ""
    body = f"<Response><Code>{code}</Code><Message>m</Message>{inner}</Response>"
    return httpx2.Response(status, content=body.encode())


async def test_the_court_gets_xml_with_the_idempotency_key(
    mock_adapter: MockAdapter, agency_configs: dict[str, AgencyConfig]
) -> None:
    adapter, transport = mock_adapter(agency_configs["court"], lambda _: court())
    assert await adapter.deliver(_delivery()) == Delivered(200, "FYQS00000001")
    (request,) = transport.requests
    assert (request.method, request.url.path) == ("POST", "/court/deliveries")
    assert request.headers["Idempotency-Key"] == "DL0123"
    assert request.headers["X-Court-Key"] == "adapter-test-secret-7f3a"
    assert request.headers["Content-Type"].startswith("application/xml")
    document = decode_body(request.content, "xml")["SD"]
    assert document["SDBH"] == "DL0123"
    assert document["WSLX"] == "QSS"
    assert document["AH"] == "(2024)宁0104刑初465号"
    assert document["WSNR"]["BGRID"] == "P0000002001,P0000002002"
    assert [f["WJMC"] for f in document["FJ"]["WJ"]] == ["a.pdf", "b.pdf"]


async def test_the_procuratorate_gets_camel_case_json(
    mock_adapter: MockAdapter, agency_configs: dict[str, AgencyConfig]
) -> None:
    def answer(request: httpx2.Request) -> httpx2.Response:
        if request.url.path == "/oauth/token":
            token = {"access_token": "t", "token_type": "Bearer", "expires_in": 600}
            return httpx2.Response(200, json=token)
        return httpx2.Response(201, json={"receiptNo": "JCQS00000007"})

    transfer = {"transfer_id": "PT0000002001", "case_id": "C00000020", "person_ids": ["P1"]}
    adapter, transport = mock_adapter(agency_configs["procuratorate"], answer)
    delivered = await adapter.deliver(_delivery("prosecution_transfer", transfer))
    assert delivered == Delivered(201, "JCQS00000007")
    request = transport.requests[-1]
    assert request.headers["Authorization"] == "Bearer t"
    body = orjson.loads(request.content)
    assert body["content"] == {
        "transferId": "PT0000002001",
        "caseId": "C00000020",
        "suspects": [{"personId": "P1"}],
    }
    assert body["attachments"][0] == {"fileName": "a.pdf", "mimeType": "application/pdf",
                                      "data": "JVBERi0="}  # fmt: skip


@pytest.mark.parametrize(
    ("answer", "category", "status"),
    [
        (court(status=422, code="422"), "upstream_4xx", 422),
        (court(status=503, code="503"), "upstream_5xx", 503),
        (court(code="7"), "upstream_refused", 200),  # an error in the envelope
        (court(receipt=None), "upstream_invalid", 200),  # no receipt number
        (httpx2.Response(200, content=b"<not xml"), "upstream_invalid", 200),
    ],
)
async def test_what_is_not_delivered_raises(
    mock_adapter: MockAdapter,
    agency_configs: dict[str, AgencyConfig],
    answer: httpx2.Response,
    category: str,
    status: int,
) -> None:
    adapter, _ = mock_adapter(agency_configs["court"], lambda _: answer, retries=0)
    with pytest.raises(UpstreamProtocolError) as caught:
        await adapter.deliver(_delivery())
    assert (caught.value.category, caught.value.upstream_status) == (category, status)


async def test_a_resource_without_a_write_mapping_is_not_sent(
    mock_adapter: MockAdapter, agency_configs: dict[str, AgencyConfig]
) -> None:
    adapter, transport = mock_adapter(agency_configs["court"], lambda _: court())
    with pytest.raises(MappingError):
        await adapter.deliver(_delivery("person", {"person_id": "P1"}))
    assert transport.requests == []
    bare = agency_configs["court"].model_copy(update={"deliveries": None})
    adapter, _ = mock_adapter(bare, lambda _: court())
    with pytest.raises(UnsupportedOperation):
        await adapter.deliver(_delivery())


@pytest.mark.parametrize(
    ("answer", "outcome"),
    [
        (lambda _: court(), PushOutcome.DELIVERED),
        (lambda _: court(status=503, code="503"), PushOutcome.RETRY),
        (lambda _: court(status=500, code="500"), PushOutcome.RETRY),
        (lambda _: court(status=429, code="429"), PushOutcome.RETRY),
        (lambda _: court(status=408, code="408"), PushOutcome.RETRY),
        (lambda _: court(receipt=None), PushOutcome.RETRY),
        (lambda _: court(status=400, code="400"), PushOutcome.REFUSED),
        (lambda _: court(status=401, code="401"), PushOutcome.REFUSED),
        (lambda _: court(code="7"), PushOutcome.REFUSED),
    ],
)
async def test_the_push_retries_what_may_pass_and_gives_up_on_a_refusal(
    mock_adapter: MockAdapter,
    agency_configs: dict[str, AgencyConfig],
    standard: Standard,
    answer: Callable[[httpx2.Request], httpx2.Response],
    outcome: PushOutcome,
) -> None:
    adapter, _ = mock_adapter(agency_configs["court"], answer, retries=0)
    push = adapter_push(
        AgencyAdapters({"court": adapter}, case_owner="public_security"), standard, _RULES
    )
    content = orjson.dumps({"record": INDICTMENT, "attachments": []})
    job = PushJob("DL1", "indictment", "JC640104", "FY640104", "(2024)宁0104刑初465号", content)
    result = await push(job)
    assert result.outcome is outcome
    if outcome is PushOutcome.DELIVERED:
        assert result.receipt == "FYQS00000001"
    else:
        assert result.error is not None
        assert "FYQS" not in result.error


async def test_an_unreachable_recipient_is_retried(
    mock_adapter: MockAdapter, agency_configs: dict[str, AgencyConfig], standard: Standard
) -> None:
    def down(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("refused", request=request)

    adapter, _ = mock_adapter(agency_configs["court"], down, retries=0)
    push = adapter_push(
        AgencyAdapters({"court": adapter}, case_owner="public_security"), standard, _RULES
    )
    content = orjson.dumps({"record": INDICTMENT, "attachments": []})
    job = PushJob("DL1", "indictment", "JC640104", "FY640104", "x", content)
    result = await push(job)
    assert (result.outcome, result.error) == (PushOutcome.RETRY, "upstream_unavailable")


def test_xml_encoding_reads_back() -> None:
    data = {"SD": {"A": "一", "B": ["1", "2"], "C": {"D": "x"}, "E": None, "F": True}}
    assert decode_body(encode_body(data, "xml"), "xml") == {
        "SD": {"A": "一", "B": ["1", "2"], "C": {"D": "x"}, "E": "", "F": "true"}
    }
    with pytest.raises(ValueError, match="one root"):
        encode_body({"A": 1, "B": 2}, "xml")


def test_the_deliveries_section_is_checked(
    agency_configs: dict[str, AgencyConfig], agencies_dir: Path
) -> None:
    court_config = agency_configs["court"]
    assert court_config.deliveries is not None
    raw = court_config.model_dump(by_alias=True, exclude={"source_file"})
    broken = {**raw, "deliveries": {**raw["deliveries"], "root": None}}
    with pytest.raises(ValidationError, match="document element"):
        AgencyConfig.model_validate(broken)
    fields = dict(raw["deliveries"]["fields"])
    del fields["case_number"]
    with pytest.raises(ValidationError, match="case_number"):
        AgencyConfig.model_validate({**raw, "deliveries": {**raw["deliveries"], "fields": fields}})
    extra = {**raw["deliveries"]["fields"], "surprise": "X"}
    with pytest.raises(ValidationError, match="surprise"):
        AgencyConfig.model_validate({**raw, "deliveries": {**raw["deliveries"], "fields": extra}})


async def test_a_recipient_kind_without_an_adapter_is_refused(standard: Standard) -> None:
    push = adapter_push(AgencyAdapters({}, case_owner="public_security"), standard, _RULES)
    content = orjson.dumps({"record": INDICTMENT, "attachments": []})
    result = await push(PushJob("DL1", "indictment", "JC640104", "FY640104", "x", content))
    assert (result.outcome, result.error) == (PushOutcome.REFUSED, "recipient_has_no_adapter")


async def test_what_the_policy_in_force_refuses_is_not_sent(
    mock_adapter: MockAdapter, agency_configs: dict[str, AgencyConfig], standard: Standard
) -> None:
    sent: list[httpx2.Request] = []

    def answer(request: httpx2.Request) -> httpx2.Response:
        sent.append(request)
        return httpx2.Response(500)

    adapter, _ = mock_adapter(agency_configs["court"], answer, retries=0)
    adapters = AgencyAdapters({"court": adapter}, case_owner="public_security")
    push = adapter_push(adapters, standard, lambda *_: False)  # e.g. frozen: no rule in force
    content = orjson.dumps({"record": INDICTMENT, "attachments": []})
    result = await push(PushJob("DL1", "indictment", "JC640104", "FY640104", "x", content))
    assert (result.outcome, result.error) == (PushOutcome.REFUSED, "policy_refuses_now")
    assert sent == []
