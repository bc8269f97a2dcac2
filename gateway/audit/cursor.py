"""Audit listing cursors: base64url of a small JSON object, refused clearly when malformed.

Readable on purpose: they hold an audit index, which is no secret to the regulators who page
the log. Exchange search cursors, which would name records, are sealed instead
(gateway/exchange/cursor.py).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

from gateway.errors import UnprocessableContent

__all__ = ["decode_cursor", "encode_cursor"]


def encode_cursor(payload: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(payload)).decode("ascii").rstrip("=")


def decode_cursor(cursor: str, *, kind: str) -> dict[str, Any]:
    """Decode a cursor made by :func:`encode_cursor` for ``kind``, or raise 422 naming it."""
    try:
        if len(cursor) > 512:
            raise ValueError("too long")
        payload = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(payload, dict) or payload.get("k") != kind:
            raise ValueError("not a cursor of this listing")
    except (ValueError, binascii.Error, orjson.JSONDecodeError) as exc:
        raise UnprocessableContent(
            "the cursor is malformed; pass back next_cursor unchanged",
            [{"field": "cursor", "reason": str(exc) or "malformed"}],
        ) from exc
    return payload
