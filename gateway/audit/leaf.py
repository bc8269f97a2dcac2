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

Two encoders, one output. Most entries are plain: built of ``dict``, ``list``,
``tuple``, ``str``, ``int``, ``bool`` and ``None`` exactly (no subclasses), with
ASCII object keys. For those, ``orjson.dumps(entry, option=OPT_SORT_KEYS)`` *is*
the RFC 8785 form, more than ten times faster than the reference encoder:

* key order: RFC 8785 sorts keys by UTF-16 code units, orjson by UTF-8 bytes; for
  ASCII keys both are the code-point order;
* strings: both escape exactly ``"``, ``\\`` and U+0000..U+001F (``\\b \\f \\n
  \\r \\t``, else ``\\u00xx`` in lower case) and write everything else, ``/``,
  U+007F, U+2028/U+2029 and all non-ASCII included, as raw UTF-8 (checked for every
  code point in the tests); orjson refuses lone surrogates, which are refused here too;
* integers within ±(2**53 - 1) print as plain decimals in both; floats, the one
  place where the two differ, never take the fast path;
* no whitespace, ``[]`` and ``{}`` for empty containers, tuples as arrays.

Anything else (a float, a subclass such as an ``Enum`` member, a non-``dict``
mapping, a non-ASCII key, too deep a nesting, a lone surrogate, ...) goes through
the reference path (:func:`_normalize` + ``rfc8785.dumps``), which either encodes
it exactly as before or raises :class:`LeafEncodingError` naming the offending path.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson
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


def _plain_keys(mapping: dict[Any, Any]) -> bool:
    for key in mapping:  # noqa: SIM110 - a loop is ~1.6x faster than all(<genexpr>) here
        if type(key) is not str or not key.isascii():
            return False
    return True


def _plain_values(values: Iterable[Any], size: int, depth: int) -> bool:
    """Are ``values`` (``size`` of them, at nesting ``depth``) all inside the fast subset?"""
    if depth > MAX_DEPTH:
        return size == 0  # the reference path refuses any value deeper than MAX_DEPTH
    for value in values:
        kind = type(value)
        if kind is str or value is None or kind is bool:
            continue
        if kind is int:
            if -MAX_SAFE_INT <= value <= MAX_SAFE_INT:
                continue
            return False
        if kind is dict:
            if not (_plain_keys(value) and _plain_values(value.values(), len(value), depth + 1)):
                return False
        elif kind is list or kind is tuple:
            if not _plain_values(value, len(value), depth + 1):
                return False
        else:
            return False
    return True


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
    if type(entry) is dict and _plain_keys(entry) and _plain_values(entry.values(), len(entry), 1):
        try:
            return orjson.dumps(entry, option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError:  # a lone surrogate: the reference path says where
            pass
    return _reference_leaf_bytes(entry)


def _reference_leaf_bytes(entry: Mapping[str, object]) -> bytes:
    """The reference encoder: validate and normalise, then ``rfc8785.dumps``."""
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
