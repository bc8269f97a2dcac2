"""Delivery attachments: ``[{"name", "media_type", "content_base64"}]``, checked by content.

Contract of :func:`check_attachments`: it returns the decoded attachments, or raises

* :class:`~gateway.errors.PayloadTooLarge` (413) when one is larger than the kind's
  ``max_bytes`` (checked on the base64 length before decoding, then on the bytes), and
* :class:`~gateway.errors.UnprocessableContent` (422) naming the field
  (``attachments[1].media_type`` ...) for anything else: not a list, too many, a required
  attachment missing, unknown keys, a bad name, base64 that is not canonical, a media type the
  kind does not take, or content that is not what it says.

Content types: PDF starts with ``%PDF-``; OFD (GB/T 33190-2016) is a ZIP package whose entry
``OFD.xml`` is at its root. Only the ZIP's central directory is read, never an entry's data.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass

from gateway.errors import PayloadTooLarge, UnprocessableContent
from gateway.standard.delivery_kinds import AttachmentRule

__all__ = ["Attachment", "check_attachments", "sniff_media_type"]

_KEYS = frozenset({"name", "media_type", "content_base64"})
_MAX_NAME = 128


@dataclass(frozen=True)
class Attachment:
    name: str
    media_type: str
    content: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()

    def summary(self) -> dict[str, object]:
        """What a delivery shows of it: name, type, size and SHA-256 (not the content)."""
        return {
            "name": self.name,
            "media_type": self.media_type,
            "size": len(self.content),
            "sha256": self.sha256,
        }


def sniff_media_type(content: bytes) -> str | None:
    """``application/pdf``, ``application/ofd`` or ``None``, from the bytes alone."""
    if content.startswith(b"%PDF-"):
        return "application/pdf"
    if content.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(io.BytesIO(content)) as package:
                names = package.namelist()
        except (zipfile.BadZipFile, ValueError, OSError):
            return None
        if "OFD.xml" in names:
            return "application/ofd"
    return None


def _invalid(field: str, reason: str) -> UnprocessableContent:
    return UnprocessableContent(f"{field}: {reason}", [{"field": field, "reason": reason}])


def _one(i: int, item: object, rule: AttachmentRule) -> Attachment:
    where = f"attachments[{i}]"
    if not isinstance(item, Mapping):
        raise _invalid(where, "must be an object with name, media_type and content_base64")
    unknown = sorted(set(item) - _KEYS)
    if unknown:
        raise _invalid(f"{where}.{unknown[0]}", "unknown key")
    for key in sorted(_KEYS):
        if not isinstance(item.get(key), str) or not item[key]:
            raise _invalid(f"{where}.{key}", "required, a non-empty string")
    name, media_type, text = item["name"], item["media_type"], item["content_base64"]
    if len(name) > _MAX_NAME or any(ch in "/\\" or ord(ch) < 0x20 for ch in name):
        raise _invalid(f"{where}.name", f"at most {_MAX_NAME} characters, no / \\ or controls")
    if media_type not in rule.media_types:
        allowed = ", ".join(rule.media_types)
        raise _invalid(f"{where}.media_type", f"must be one of: {allowed}")
    if len(text) > (rule.max_bytes + 2) // 3 * 4:
        raise PayloadTooLarge(
            f"{where} is larger than {rule.max_bytes} bytes", extra={"field": where}
        )
    try:
        content = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise _invalid(f"{where}.content_base64", "not standard base64 with padding") from None
    if len(content) > rule.max_bytes:
        raise PayloadTooLarge(
            f"{where} is larger than {rule.max_bytes} bytes", extra={"field": where}
        )
    found = sniff_media_type(content)
    if found != media_type:
        raise _invalid(
            f"{where}.content_base64",
            f"the content is not {media_type}" + (f" (it is {found})" if found else ""),
        )
    return Attachment(name, media_type, content)


def check_attachments(value: object, rule: AttachmentRule | None) -> list[Attachment]:
    """Decode and check ``value`` (the body's ``attachments``, ``None`` if absent) by ``rule``."""
    if value is None:
        if rule is not None and rule.required:
            raise _invalid("attachments", "this kind of delivery needs its documents attached")
        return []
    if rule is None:
        raise _invalid("attachments", "this kind of delivery takes no attachments")
    if not isinstance(value, list):
        raise _invalid("attachments", "must be a list")
    if len(value) > rule.max_count:
        raise _invalid("attachments", f"at most {rule.max_count} attachments")
    if rule.required and not value:
        raise _invalid("attachments", "this kind of delivery needs its documents attached")
    attachments = [_one(i, item, rule) for i, item in enumerate(value)]
    names = [a.name for a in attachments]
    if len(set(names)) != len(names):
        raise _invalid("attachments", "two attachments have the same name")
    return attachments
