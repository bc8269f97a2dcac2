"""Attachments: PDF or OFD by content, a size cap, every problem naming its field."""

from __future__ import annotations

import base64
import io
import zipfile

import pytest

from gateway.deliveries.attachments import check_attachments, sniff_media_type
from gateway.errors import GatewayError, PayloadTooLarge, UnprocessableContent
from gateway.standard.delivery_kinds import AttachmentRule

RULE = AttachmentRule(
    media_types=("application/pdf", "application/ofd"), max_count=2, max_bytes=1000
)
PDF = b"%PDF-1.7\n1 0 obj<<>>endobj\n%%EOF\n"


def _ofd(root: str = "OFD.xml") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as package:
        package.writestr(root, "<ofd:OFD/>")
        package.writestr("Doc_0/Document.xml", "<ofd:Document/>")
    return buffer.getvalue()


def _item(
    content: bytes, media_type: str = "application/pdf", name: str = "a.pdf"
) -> dict[str, str]:
    return {
        "name": name,
        "media_type": media_type,
        "content_base64": base64.b64encode(content).decode(),
    }


def test_pdf_and_ofd_are_recognised_by_content() -> None:
    assert sniff_media_type(PDF) == "application/pdf"
    assert sniff_media_type(_ofd()) == "application/ofd"
    assert sniff_media_type(_ofd("Doc_0/OFD.xml")) is None  # not at the root
    assert sniff_media_type(b"PK\x03\x04 not a zip") is None
    assert sniff_media_type(b"<html>") is None
    done = check_attachments([_item(PDF), _item(_ofd(), "application/ofd", "b.ofd")], RULE)
    assert [a.media_type for a in done] == ["application/pdf", "application/ofd"]
    assert done[0].summary()["size"] == len(PDF)
    assert check_attachments(None, RULE) == []


def _field(exc: GatewayError) -> str:
    if isinstance(exc, UnprocessableContent):
        return str(exc.extra["errors"][0]["field"])
    return str(exc.extra["field"])


@pytest.mark.parametrize(
    ("value", "error", "field"),
    [
        ("x", UnprocessableContent, "attachments"),
        ([_item(PDF, name=n) for n in ("a", "b", "c")], UnprocessableContent, "attachments"),
        ([_item(PDF), _item(PDF)], UnprocessableContent, "attachments"),  # same name
        (["x"], UnprocessableContent, "attachments[0]"),
        ([{**_item(PDF), "path": "/etc"}], UnprocessableContent, "attachments[0].path"),
        (
            [{"name": "a", "media_type": "application/pdf"}],
            UnprocessableContent,
            "attachments[0].content_base64",
        ),
        ([_item(PDF, name="../a.pdf")], UnprocessableContent, "attachments[0].name"),
        ([_item(PDF, "image/png")], UnprocessableContent, "attachments[0].media_type"),
        ([_item(b"<html>not a pdf</html>")], UnprocessableContent, "attachments[0].content_base64"),
        ([_item(PDF, "application/ofd")], UnprocessableContent, "attachments[0].content_base64"),
        (
            [{**_item(PDF), "content_base64": "JVBE Rg=="}],
            UnprocessableContent,
            "attachments[0].content_base64",
        ),
        ([_item(PDF + b"0" * 1000)], PayloadTooLarge, "attachments[0]"),
        (
            [_item(PDF), {**_item(PDF, name="b"), "content_base64": "A" * 5000}],
            PayloadTooLarge,
            "attachments[1]",
        ),
    ],
)
def test_bad_attachments_name_their_field(
    value: object, error: type[GatewayError], field: str
) -> None:
    with pytest.raises(error) as info:
        check_attachments(value, RULE)
    assert _field(info.value) == field


def test_kinds_without_attachments_and_required_ones() -> None:
    with pytest.raises(UnprocessableContent, match="takes no attachments"):
        check_attachments([_item(PDF)], None)
    required = AttachmentRule(
        media_types=("application/pdf",), max_count=1, max_bytes=99, required=True
    )
    for value in (None, []):
        with pytest.raises(UnprocessableContent, match="needs its documents"):
            check_attachments(value, required)
