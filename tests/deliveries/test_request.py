"""The body of POST /v1/deliveries: every bad input a clear 4xx naming its field (issue 15)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from gateway.deliveries.request import parse_delivery
from gateway.errors import Forbidden, GatewayError, PayloadTooLarge, UnprocessableContent
from gateway.standard import Standard
from tests.standard.conftest import _valid_records

PDF = b"%PDF-1.7\n%%EOF\n"
RECEIVED = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


def _body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "arrest_request",
        "to_agency": "JC640104",
        "record": _valid_records()["case"],
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not ...}


def _parse(standard: Standard, body: object, sender: str = "GA640104") -> Any:
    return parse_delivery(standard, sender, orjson.dumps(body))


def test_a_valid_body(standard: Standard) -> None:
    attachment = {
        "name": "提请批准逮捕书.pdf",
        "media_type": "application/pdf",
        "content_base64": base64.b64encode(PDF).decode(),
    }
    request = _parse(standard, _body(attachments=[attachment]))
    assert (request.kind.code, request.sender.code, request.recipient.code) == (
        "arrest_request",
        "GA640104",
        "JC640104",
    )
    assert request.record == _valid_records()["case"]
    content = orjson.loads(request.content(request.record))
    assert content["attachments"][0]["content_base64"] == attachment["content_base64"]
    assert request.deadline(request.record, RECEIVED) is not None
    # The fingerprint ignores key order and spacing, and changes with the content.
    spaced = orjson.dumps(_body(attachments=[attachment]), option=orjson.OPT_INDENT_2)
    assert parse_delivery(standard, "GA640104", spaced).request_sha256 == request.request_sha256
    other = _parse(standard, _body(to_agency="JC640105"))
    assert other.request_sha256 != request.request_sha256
    by_id = _parse(standard, _body(record=..., record_id="C-2021-0001"))
    assert (by_id.record, by_id.record_id) == (None, "C-2021-0001")


def _case_without(name: str) -> dict[str, object]:
    record = dict(_valid_records()["case"])
    del record[name]
    return record


@pytest.mark.parametrize(
    ("body", "sender", "error", "field"),
    [
        ([1], "GA640104", UnprocessableContent, "body"),
        (_body(extra=1), "GA640104", UnprocessableContent, "extra"),
        (_body(kind="arrest"), "GA640104", UnprocessableContent, "kind"),
        (_body(kind=None), "GA640104", UnprocessableContent, "kind"),
        (_body(), "XX640104", Forbidden, None),
        (_body(), "FY640104", Forbidden, None),  # courts do not request arrests
        (_body(to_agency="JC999999"), "GA640104", UnprocessableContent, "to_agency"),
        (_body(to_agency="FY640104"), "GA640104", UnprocessableContent, "to_agency"),
        (_body(record=...), "GA640104", UnprocessableContent, "record"),
        (_body(record_id="C1"), "GA640104", UnprocessableContent, "record"),
        (_body(record=..., record_id="../x"), "GA640104", UnprocessableContent, "record_id"),
        (_body(record="x"), "GA640104", UnprocessableContent, "record"),
        (
            _body(record=_case_without("case_name")),
            "GA640104",
            UnprocessableContent,
            "record.case_name",
        ),
        (
            _body(record={**_valid_records()["case"], "stage": "NOPE"}),
            "GA640104",
            UnprocessableContent,
            "record.stage",
        ),
        (
            _body(
                attachments=[
                    {
                        "name": "a",
                        "media_type": "application/pdf",
                        "content_base64": base64.b64encode(b"<html>").decode(),
                    }
                ]
            ),
            "GA640104",
            UnprocessableContent,
            "attachments[0].content_base64",
        ),
        (
            _body(
                attachments=[
                    {
                        "name": "a",
                        "media_type": "application/pdf",
                        "content_base64": base64.b64encode(PDF + b"0" * 10485760).decode(),
                    }
                ]
            ),
            "GA640104",
            PayloadTooLarge,
            "attachments[0]",
        ),
        (
            _body(
                kind="custody_transfer",
                record=_valid_records()["coercive_measure"],
                to_agency="GA640105",
                attachments=[],
            ),
            "JC640104",
            UnprocessableContent,
            "attachments",
        ),
    ],
)
def test_bad_input_is_refused_naming_the_field(
    standard: Standard,
    body: object,
    sender: str,
    error: type[GatewayError],
    field: str | None,
) -> None:
    with pytest.raises(error) as info:
        _parse(standard, body, sender)
    exc = info.value
    if isinstance(exc, UnprocessableContent):
        assert exc.extra["errors"][0]["field"] == field
    elif field is not None:
        assert exc.extra["field"] == field


def test_a_sender_does_not_deliver_to_itself(standard: Standard) -> None:
    body = _body(
        kind="arrest_decision", to_agency="JC640104", record=_valid_records()["arrest_review"]
    )
    with pytest.raises(UnprocessableContent) as info:
        _parse(standard, body, "JC640104")
    assert info.value.extra["errors"][0]["field"] == "to_agency"


def test_a_deadline_counted_from_a_missing_date_names_it(standard: Standard) -> None:
    judgment = dict(_valid_records()["judgment"])
    body = _body(kind="judgment_execution", to_agency="JY640001", record=judgment)
    request = _parse(standard, body, "FY640104")
    assert request.deadline(judgment, RECEIVED) is not None
    judgment.pop("effective_date")
    with pytest.raises(UnprocessableContent) as info:
        request.deadline(judgment, RECEIVED)
    assert info.value.extra["errors"][0]["field"] == "record.effective_date"
