"""Delivery receipts (签收 / 退回 回执): C2SP signed notes, Ed25519, as the audit checkpoints.

The signing and note code is the checkpoints' (:mod:`gateway.audit.checkpoint`); only the
body differs. Receipt body (UTF-8, every line ending in ``\\n``, one ``key value`` per line
after the first)::

    zhengfa-gateway/delivery-receipt/v1
    delivery DL0123456789abcdef01234567
    kind prosecution_transfer
    from GA640104
    to JC640104
    case A6401040000002021030042
    content-sha256 <64 lower-case hex digits>
    decision accepted
    time 2026-03-02T09:00:00Z
    audit-index 42

``time`` is UTC with second precision. ``reason`` (for ``returned``) is not in the receipt:
it is in the delivery's events and the audit entry; the receipt binds what was decided about
which content. Values hold no whitespace (checked): a line cannot smuggle another.

The receipt key is its own Ed25519 key (``data_dir/keys/receipt.key`` by default, see
:func:`receipt_key_path`), named ``<audit origin>/receipts``; its verifier text is public
(``GET /v1/deliveries/key``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from gateway.audit.checkpoint import (
    CheckpointError,
    CheckpointSigner,
    Verifier,
    load_or_create_signer,
    open_note,
)

__all__ = [
    "RECEIPT_FORMAT",
    "Receipt",
    "ReceiptError",
    "load_receipt_signer",
    "open_receipt",
    "receipt_body",
    "receipt_key_name",
    "receipt_key_path",
    "sign_receipt",
]

RECEIPT_FORMAT = "zhengfa-gateway/delivery-receipt/v1"
_KEYS = (
    "delivery",
    "kind",
    "from",
    "to",
    "case",
    "content-sha256",
    "decision",
    "time",
    "audit-index",
)
_SHA256 = re.compile(r"[0-9a-f]{64}")
_INDEX = re.compile(r"0|[1-9][0-9]{0,18}")
_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")


class ReceiptError(ValueError):
    """A receipt is malformed, or not signed by the receipt key."""


@dataclass(frozen=True)
class Receipt:
    """What a receipt says."""

    delivery_id: str
    kind: str
    from_agency: str
    to_agency: str
    case_number: str
    content_sha256: str
    decision: str
    time: datetime
    audit_index: int

    def values(self) -> tuple[str, ...]:
        return (
            self.delivery_id,
            self.kind,
            self.from_agency,
            self.to_agency,
            self.case_number,
            self.content_sha256,
            self.decision,
            self.time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            str(self.audit_index),
        )


def receipt_key_name(audit_origin: str) -> str:
    """The receipt key's name for a deployment whose audit origin is ``audit_origin``."""
    return f"{audit_origin}/receipts"


def receipt_key_path(data_dir: Path) -> Path:
    return data_dir / "keys" / "receipt.key"


def load_receipt_signer(data_dir: Path, audit_origin: str) -> CheckpointSigner:
    """The deployment's receipt key, made (mode 0600) on first use."""
    return load_or_create_signer(receipt_key_path(data_dir), receipt_key_name(audit_origin))


def receipt_body(receipt: Receipt) -> str:
    """The signed text of ``receipt`` (see module docstring); ``ReceiptError`` if unfit."""
    values = receipt.values()
    for key, value in zip(_KEYS, values, strict=True):
        if not value or any(ch.isspace() or ord(ch) < 0x20 for ch in value):
            raise ReceiptError(f"receipt {key} must be non-empty, without whitespace")
    if _SHA256.fullmatch(receipt.content_sha256) is None:
        raise ReceiptError("receipt content-sha256 must be 64 lower-case hex digits")
    if receipt.decision not in ("accepted", "returned"):
        raise ReceiptError("receipt decision must be accepted or returned")
    if receipt.audit_index < 0:
        raise ReceiptError("receipt audit-index must not be negative")
    lines = [RECEIPT_FORMAT, *(f"{k} {v}" for k, v in zip(_KEYS, values, strict=True))]
    return "\n".join(lines) + "\n"


def sign_receipt(signer: CheckpointSigner, receipt: Receipt) -> str:
    """The signed note of ``receipt``."""
    return signer.sign_note(receipt_body(receipt))


def open_receipt(note: str, verifiers: Sequence[Verifier]) -> Receipt:
    """Verify ``note`` with ``verifiers`` and parse it; ``ReceiptError`` otherwise."""
    try:
        text = open_note(note, verifiers).text
    except CheckpointError as exc:
        raise ReceiptError(str(exc)) from None
    lines = text.split("\n")
    if lines[-1] != "" or len(lines) != len(_KEYS) + 2 or lines[0] != RECEIPT_FORMAT:
        raise ReceiptError("not a delivery receipt")
    values: list[str] = []
    for key, line in zip(_KEYS, lines[1:-1], strict=True):
        name, sep, value = line.partition(" ")
        if name != key or not sep or not value:
            raise ReceiptError(f"receipt line {key!r} is missing or malformed")
        values.append(value)
    if _INDEX.fullmatch(values[8]) is None or _TIME.fullmatch(values[7]) is None:
        raise ReceiptError("receipt time or audit-index is malformed")
    receipt = Receipt(
        delivery_id=values[0],
        kind=values[1],
        from_agency=values[2],
        to_agency=values[3],
        case_number=values[4],
        content_sha256=values[5],
        decision=values[6],
        time=datetime.strptime(values[7], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC),
        audit_index=int(values[8]),
    )
    if receipt_body(receipt) != text:
        raise ReceiptError("receipt is not in canonical form")
    return receipt
