"""Canonical leaf encoding for audit-log entries (RFC 8785 JSON Canonicalization Scheme).

The bytes returned by :func:`leaf_bytes` are what the Merkle tree hashes (via
:func:`gateway.audit.merkle.leaf_hash`), so they must be byte-for-byte
reproducible by any verifier in any language. To keep the canonical form
unambiguous, entries are restricted to this JSON subset:

* ``str`` (valid Unicode, no lone surrogates), ``int`` within the I-JSON safe range
  ``[-(2**53 - 1), 2**53 - 1]``, ``bool`` and ``None``;
* ``list`` / ``tuple`` of allowed values;
* mappings (e.g. ``dict``) with ``str`` keys and allowed values.

Floats are rejected outright, even integral ones such as ``1.0``: number
formatting is the least portable part of canonical JSON. Store measured
quantities as integers in a fixed unit (e.g. latency as integer microseconds).
Bytes, datetimes, decimals etc. must be converted by the caller (e.g. to
base64 / RFC 3339 strings) before encoding.
"""

from __future__ import annotations

from collections.abc import Mapping

import rfc8785

from gateway.audit.merkle import leaf_hash

__all__ = [
    "MAX_DEPTH",
    "MAX_SAFE_INT",
    "JSONValue",
    "LeafEncodingError",
    "entry_leaf_hash",
    "leaf_bytes",
]

MAX_SAFE_INT = 2**53 - 1
"""Largest integer magnitude accepted (I-JSON, RFC 7493 §2.2)."""

MAX_DEPTH = 32
"""Maximum nesting depth of containers in an entry."""


class LeafEncodingError(ValueError):
    """The entry contains a value outside the allowed JSON subset; the message names its path."""


JSONValue = None | bool | int | str | list["JSONValue"] | dict[str, "JSONValue"]
"""The JSON subset accepted in audit entries (after normalisation)."""


def _normalize(value: object, path: str, depth: int) -> JSONValue:
    """Validate ``value`` and return it with mappings as dicts and sequences as lists."""
    if depth > MAX_DEPTH:
        raise LeafEncodingError(f"{path}: nesting deeper than {MAX_DEPTH} levels")
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if not -MAX_SAFE_INT <= value <= MAX_SAFE_INT:
            raise LeafEncodingError(f"{path}: integer {value} is outside ±(2**53 - 1)")
        return int(value)
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise LeafEncodingError(f"{path}: string is not valid Unicode ({exc.reason})") from None
        return str(value)
    if isinstance(value, float):
        raise LeafEncodingError(
            f"{path}: floats are not allowed in audit entries; use integers in a fixed unit"
        )
    if isinstance(value, list | tuple):
        return [_normalize(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value)]
    if isinstance(value, Mapping):
        out: dict[str, JSONValue] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise LeafEncodingError(f"{path}: object key {key!r} is not a string")
            _normalize(key, f"{path}.<key>", depth + 1)
            out[key] = _normalize(item, f"{path}.{key}", depth + 1)
        return out
    raise LeafEncodingError(f"{path}: type {type(value).__name__} is not allowed")


def leaf_bytes(entry: Mapping[str, object]) -> bytes:
    """Return the RFC 8785 canonical JSON (UTF-8) encoding of ``entry``.

    The result does not depend on key insertion order. Raises
    :class:`LeafEncodingError` if ``entry`` is not a mapping or contains a value
    outside the allowed subset described in the module docstring.
    """
    if not isinstance(entry, Mapping):
        raise LeafEncodingError(f"$: entry must be a mapping, got {type(entry).__name__}")
    normalized = _normalize(entry, "$", 0)
    try:
        out: bytes = rfc8785.dumps(normalized)
    except rfc8785.CanonicalizationError as exc:  # pragma: no cover - pre-checked above
        raise LeafEncodingError(str(exc)) from exc
    return out


def entry_leaf_hash(entry: Mapping[str, object]) -> bytes:
    """Return the Merkle leaf hash ``SHA-256(0x00 || leaf_bytes(entry))``."""
    return leaf_hash(leaf_bytes(entry))
