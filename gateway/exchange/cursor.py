"""Sealed search cursors: opaque, tamper-proof, and good only for the search and client they serve.

A search cursor carries a keyset position (a record id). Readable, it would name records; editable,
it would let a caller steer the upstream search. So it is sealed with AES-256-GCM::

    cursor = base64url( 0x01 | nonce (12 random bytes) | AES-GCM(position padded to 64 bytes) )
    associated data = ["zhengfa-gateway/search-cursor/v1", client_id, agency, search fingerprint]

The position is padded so that every cursor has the same length, and the associated data binds
it to the requester and to the resource and filters: another client's cursor, or a cursor for
other filters, fails authentication like a forged one. Every failure gets one and the same 422,
so the answer is no oracle for what was wrong.

The key is shared by every worker of a deployment, so a cursor made by one is accepted by all:

* ``GATEWAY_CURSOR_SECRET`` (at least 32 characters; HKDF-SHA256 derives the key), for
  deployments whose hosts do not share a data directory; or else
* ``data_dir/keys/cursor.key``: 32 random bytes made once, by the first worker to start, in
  the directory where the default token signing and audit checkpoint keys live (every worker
  of a deployment must already share those).

Rotation: change the secret (or delete the key file) and restart every worker. Outstanding
cursors then fail with the 422, which asks the caller to restart the search from the first page.
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.errors import UnprocessableContent
from gateway.keyfiles import MIN_SECRET_CHARS, load_deployment_key
from gateway.settings import Settings

__all__ = [
    "KEY_FILE_NAME",
    "MIN_SECRET_CHARS",
    "CursorBinding",
    "CursorSealer",
    "invalid_cursor",
    "load_cursor_key",
]

KEY_FILE_NAME = "cursor.key"
_CONTEXT = "zhengfa-gateway/search-cursor/v1"
_VERSION = b"\x01"
_NONCE_BYTES = 12
_BLOCK = 64  # record ids are 64 characters at most: one block hides every id's length
_MAX_CURSOR_CHARS = 512


def invalid_cursor() -> UnprocessableContent:
    """The one answer for every cursor that does not open: malformed, altered, foreign, stale."""
    return UnprocessableContent(
        "the cursor is not valid for this search: pass back next_cursor unchanged, with the same "
        "client and filters, or restart the search from the first page (without a cursor)",
        [
            {
                "field": "cursor",
                "reason": "malformed, altered, issued for another search or client, "
                "or sealed with a key that has since been rotated",
            }
        ],
    )


@dataclass(frozen=True)
class CursorBinding:
    """What a cursor is good for: this client, of this agency, running this search."""

    client_id: str
    agency: str
    search: str

    def associated_data(self) -> bytes:
        return orjson.dumps([_CONTEXT, self.client_id, self.agency, self.search])


class CursorSealer:
    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("a cursor key is 32 bytes (AES-256)")
        self._aead = AESGCM(key)

    @classmethod
    def from_settings(cls, settings: Settings) -> CursorSealer:
        return cls(load_cursor_key(settings))

    def seal(self, position: str, binding: CursorBinding) -> str:
        data = position.encode()
        padded = data.ljust(max(_BLOCK, -(-len(data) // _BLOCK) * _BLOCK), b"\x00")
        # Random 96-bit nonces: NIST SP 800-38D allows 2^32 seals per key, far more cursors
        # than a key lives to see between rotations.
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, padded, binding.associated_data())
        return base64.urlsafe_b64encode(_VERSION + nonce + sealed).decode("ascii").rstrip("=")

    def open(self, cursor: str, binding: CursorBinding) -> str:
        """The position a cursor holds, or :func:`invalid_cursor` raised."""
        try:
            if len(cursor) > _MAX_CURSOR_CHARS:
                raise ValueError("too long")
            raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
            if raw[:1] != _VERSION or len(raw) < 1 + _NONCE_BYTES + _BLOCK + 16:
                raise ValueError("not a sealed search cursor")
            nonce, sealed = raw[1 : 1 + _NONCE_BYTES], raw[1 + _NONCE_BYTES :]
            padded = self._aead.decrypt(nonce, sealed, binding.associated_data())
            return padded.rstrip(b"\x00").decode()
        except (ValueError, binascii.Error, InvalidTag) as exc:
            # UnicodeDecodeError is a ValueError; none of the reasons goes to the caller.
            raise invalid_cursor() from exc


def load_cursor_key(settings: Settings) -> bytes:
    """The deployment's cursor key, from ``GATEWAY_CURSOR_SECRET`` or the shared key file."""
    return load_deployment_key(
        settings,
        settings.cursor_secret,
        variable="GATEWAY_CURSOR_SECRET",
        file_name=KEY_FILE_NAME,
        context=_CONTEXT,
        what="search cursor key",
    )
