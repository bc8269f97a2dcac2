"""Time-based one-time passwords (RFC 6238, on RFC 4226 HOTP), with the standard library only.

Authenticator apps use SHA-1, 6 digits and 30 s steps: those are the defaults. A code is
accepted for the current step and one step either side (clock drift, RFC 6238 §5.2), and each
step at most once: the caller stores the step :func:`verify_totp` returns.
"""

from __future__ import annotations

import base64
import hmac
import secrets
import struct
import time
from urllib.parse import quote

__all__ = ["hotp", "new_totp_secret", "provisioning_uri", "totp", "verify_totp"]

STEP_SECONDS = 30
DIGITS = 6


def new_totp_secret() -> str:
    """A 160-bit secret in unpadded base32, as authenticator apps take it."""
    return base64.b32encode(secrets.token_bytes(20)).decode("ascii").rstrip("=")


def _key(secret_b32: str) -> bytes:
    text = secret_b32.strip().replace(" ", "").upper()
    return base64.b32decode(text + "=" * (-len(text) % 8))


def hotp(key: bytes, counter: int, digits: int = DIGITS, algorithm: str = "sha1") -> str:
    """RFC 4226 §5.3: HMAC of the big-endian counter, dynamically truncated."""
    mac = hmac.new(key, struct.pack(">Q", counter), algorithm).digest()
    offset = mac[-1] & 0x0F
    value = struct.unpack(">I", mac[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10**digits).zfill(digits)


def totp(
    key: bytes,
    at: float | None = None,
    *,
    digits: int = DIGITS,
    algorithm: str = "sha1",
    step: int = STEP_SECONDS,
) -> str:
    """RFC 6238 §4.2: HOTP of the number of steps since the Unix epoch."""
    moment = time.time() if at is None else at
    return hotp(key, int(moment // step), digits, algorithm)


def verify_totp(
    secret_b32: str, code: str, *, last_step: int | None, at: float | None = None
) -> int | None:
    """The time step ``code`` is good for, or None (wrong, or that step was used already)."""
    code = code.strip()
    if len(code) != DIGITS or not (code.isascii() and code.isdigit()):
        return None
    try:
        key = _key(secret_b32)
    except ValueError:
        return None
    now_step = int((time.time() if at is None else at) // STEP_SECONDS)
    for candidate in (now_step, now_step - 1, now_step + 1):
        if last_step is not None and candidate <= last_step:
            continue
        if hmac.compare_digest(hotp(key, candidate), code):
            return candidate
    return None


def provisioning_uri(secret_b32: str, username: str, issuer: str) -> str:
    """The otpauth:// URI authenticator apps scan (Key Uri Format)."""
    label = quote(f"{issuer}:{username}")
    return f"otpauth://totp/{label}?secret={secret_b32}&issuer={quote(issuer)}"
