"""Delivery receipts are C2SP signed notes an independent verifier accepts (issue 15)."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.audit.checkpoint import CheckpointSigner
from gateway.deliveries.receipts import (
    Receipt,
    ReceiptError,
    load_receipt_signer,
    open_receipt,
    receipt_body,
    receipt_key_path,
    sign_receipt,
)

RECEIPT = Receipt(
    delivery_id="DL0123456789abcdef01234567",
    kind="prosecution_transfer",
    from_agency="GA640104",
    to_agency="JC640104",
    case_number="(2021)宁0104刑初123号",
    content_sha256="ab" * 32,
    decision="accepted",
    time=datetime(2026, 3, 2, 9, 0, 5, 123456, tzinfo=UTC),
    audit_index=42,
)


def independent_verify(note: str, verifier_text: str) -> dict[str, str]:
    """Verify a signed note from the C2SP signed-note spec alone; return its key/value lines."""
    name, hash_hex, key64 = verifier_text.split("+", 2)
    raw = base64.b64decode(key64, validate=True)
    assert raw[0] == 0x01  # Ed25519
    public = raw[1:]
    expected_hash = hashlib.sha256(name.encode() + b"\n" + raw).digest()[:4]
    assert expected_hash.hex() == hash_hex
    text, _, signatures = note.rpartition("\n\n")
    text += "\n"
    checked = 0
    for line in signatures.rstrip("\n").split("\n"):
        assert line.startswith("\u2014 ")
        signer, blob64 = line[2:].split(" ")
        blob = base64.b64decode(blob64, validate=True)
        if signer == name and blob[:4] == expected_hash:
            Ed25519PublicKey.from_public_bytes(public).verify(blob[4:], text.encode("utf-8"))
            checked += 1
    assert checked == 1
    lines = text.split("\n")
    assert lines[0] == "zhengfa-gateway/delivery-receipt/v1"
    return dict(line.split(" ", 1) for line in lines[1:-1])


def test_a_receipt_verifies_independently(tmp_path: Path) -> None:
    signer = load_receipt_signer(tmp_path, "gateway.example.gov.cn/audit")
    assert receipt_key_path(tmp_path).stat().st_mode & 0o777 == 0o600
    note = sign_receipt(signer, RECEIPT)
    fields = independent_verify(note, signer.verifier_text())
    assert fields == {
        "delivery": "DL0123456789abcdef01234567",
        "kind": "prosecution_transfer",
        "from": "GA640104",
        "to": "JC640104",
        "case": "(2021)宁0104刑初123号",
        "content-sha256": "ab" * 32,
        "decision": "accepted",
        "time": "2026-03-02T09:00:05Z",
        "audit-index": "42",
    }
    assert signer.name == "gateway.example.gov.cn/audit/receipts"
    # The same key is loaded again, not made anew.
    again = load_receipt_signer(tmp_path, "gateway.example.gov.cn/audit")
    assert again.verifier_text() == signer.verifier_text()
    opened = open_receipt(note, [signer.verifier()])
    assert opened == replace(RECEIPT, time=RECEIPT.time.replace(microsecond=0))


def test_a_tampered_receipt_fails_both_verifiers(tmp_path: Path) -> None:
    signer = load_receipt_signer(tmp_path, "origin")
    note = sign_receipt(signer, RECEIPT)
    forged = note.replace("decision accepted", "decision returned")
    with pytest.raises(InvalidSignature):
        independent_verify(forged, signer.verifier_text())
    with pytest.raises(ReceiptError):
        open_receipt(forged, [signer.verifier()])
    other = CheckpointSigner.generate("origin/receipts")
    with pytest.raises(ReceiptError):
        open_receipt(note, [other.verifier()])


def test_a_checkpoint_is_not_a_receipt(tmp_path: Path) -> None:
    signer = load_receipt_signer(tmp_path, "origin")
    checkpoint = signer.sign_checkpoint("origin", 3, bytes(32))
    with pytest.raises(ReceiptError, match="not a delivery receipt"):
        open_receipt(checkpoint, [signer.verifier()])


@pytest.mark.parametrize(
    "bad",
    [
        replace(RECEIPT, case_number="A 1"),
        replace(RECEIPT, kind="x\nforged 1"),
        replace(RECEIPT, to_agency=""),
        replace(RECEIPT, content_sha256="AB" * 32),
        replace(RECEIPT, decision="maybe"),
        replace(RECEIPT, audit_index=-1),
    ],
)
def test_unfit_values_are_refused(bad: Receipt) -> None:
    with pytest.raises(ReceiptError):
        receipt_body(bad)
