"""Field masks applied by ``mask_fields`` negative-list items.

Contracts (``None`` is never masked — an absent value stays absent; a list is masked item by
item; other non-string values are masked as their ``str()``):

* ``redact``: the value becomes ``"***"``.
* ``keep`` (``first`` N, ``last`` M): characters outside the first N and last M become ``*``; a
  value of at most N + M characters becomes all ``*`` (nothing is kept).
* ``hash``: the first ``length`` (default 16) hex characters of SHA-256 over the UTF-8 value.
  This is a *pseudonym*, not encryption: the same value always gives the same token (records
  can be linked), and low-entropy values such as ID numbers, phone numbers or names can be
  recovered by hashing candidates. Use it only where linkage is the point and the requester is
  trusted with it; use ``redact`` when the value itself must not be recoverable.
* ``year_only``: a ``YYYY-MM-DD`` date (or anything starting with a 4-digit year) becomes
  ``"YYYY"``; anything else becomes ``"***"``.

:func:`stronger` orders masks (``redact`` > ``hash`` > ``year_only`` > ``keep``, then the one
keeping fewer characters) so that when several items mask one field, the strongest applies.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from typing import Any

from gateway.policy.model import Mask, MaskKind

__all__ = ["DEFAULT_HASH_LENGTH", "REDACTED", "MaskFunction", "mask_function", "stronger"]

REDACTED = "***"
DEFAULT_HASH_LENGTH = 16
_YEAR = re.compile(r"^([0-9]{4})(?:$|-)")
_RANK = {MaskKind.REDACT: 0, MaskKind.HASH: 1, MaskKind.YEAR_ONLY: 2, MaskKind.KEEP: 3}

MaskFunction = Callable[[Any], Any]


def _redact(_: str) -> str:
    return REDACTED


def _keep(first: int, last: int) -> Callable[[str], str]:
    def apply(text: str) -> str:
        n = len(text)
        if n <= first + last:
            return "*" * n
        return text[:first] + "*" * (n - first - last) + (text[n - last :] if last else "")

    return apply


def _hash(length: int) -> Callable[[str], str]:
    def apply(text: str) -> str:
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]

    return apply


def _year_only(text: str) -> str:
    match = _YEAR.match(text)
    return match.group(1) if match else REDACTED


def _lift(on_text: Callable[[str], str]) -> MaskFunction:
    def apply(value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, list | tuple):
            return [None if v is None else on_text(str(v)) for v in value]
        return on_text(value if isinstance(value, str) else str(value))

    return apply


def mask_function(mask: Mask) -> MaskFunction:
    """The function applying ``mask`` to one field value (see module docstring)."""
    if mask.kind is MaskKind.REDACT:
        return _lift(_redact)
    if mask.kind is MaskKind.KEEP:
        return _lift(_keep(mask.first or 0, mask.last or 0))
    if mask.kind is MaskKind.HASH:
        return _lift(_hash(mask.length or DEFAULT_HASH_LENGTH))
    return _lift(_year_only)


def stronger(a: Mask, b: Mask) -> Mask:
    """The stronger of two masks (ties: the first)."""
    rank_a, rank_b = _RANK[a.kind], _RANK[b.kind]
    if rank_a != rank_b:
        return a if rank_a < rank_b else b
    if a.kind is MaskKind.KEEP:
        kept_a = (a.first or 0) + (a.last or 0)
        kept_b = (b.first or 0) + (b.last or 0)
        return b if kept_b < kept_a else a
    if a.kind is MaskKind.HASH:
        return b if (b.length or DEFAULT_HASH_LENGTH) < (a.length or DEFAULT_HASH_LENGTH) else a
    return a
