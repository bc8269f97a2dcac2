"""Client secrets, stored only as salted scrypt hashes (RFC 7914)."""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import hashlib
import hmac
import secrets
import threading

__all__ = [
    "SecretChecker",
    "TokenEndpointBusy",
    "burn_equal_time",
    "hash_secret",
    "new_client_secret",
    "verify_secret",
]

# n=2**14, r=8, p=1 costs ~40 ms and 16 MiB here: slow for guessing, fine for a
# token endpoint that clients call once per token lifetime.
_N, _R, _P = 2**14, 8, 1
_DUMMY_HASH: str | None = None


def new_client_secret() -> str:
    return secrets.token_urlsafe(32)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_secret(secret: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return f"scrypt${_N}${_R}${_P}${_b64(salt)}${_b64(digest)}"


def verify_secret(secret: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt_b64, digest_b64 = stored.split("$")
        if scheme != "scrypt":
            return False
        salt, expected = base64.b64decode(salt_b64), base64.b64decode(digest_b64)
        actual = hashlib.scrypt(
            secret.encode(), salt=salt, n=int(n), r=int(r), p=int(p), dklen=len(expected)
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def burn_equal_time(secret: str) -> None:
    """Spend what a real check costs, so unknown client ids cannot be told apart by timing."""
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        _DUMMY_HASH = hash_secret(secrets.token_urlsafe(16))
    verify_secret(secret, _DUMMY_HASH)


class TokenEndpointBusy(Exception):
    """Every scrypt slot and its queue are taken: answer 429 with ``Retry-After`` at once."""


class SecretChecker:
    """scrypt in a bounded pool of its own.

    A flood of token requests costs scrypt hashes (~40 ms of CPU and 16 MiB each). In the
    shared thread pool they would take every thread and every core from the other requests;
    here at most ``workers`` run at once (hashlib releases the interpreter while hashing) and
    at most ``queue`` more wait. Beyond that a request is refused at once
    (:class:`TokenEndpointBusy`) instead of queueing without bound.
    """

    def __init__(self, workers: int, queue: int) -> None:
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="scrypt"
        )
        self._slots = threading.BoundedSemaphore(workers + queue)

    async def verify(self, secret: str, stored: str | None) -> bool:
        """Check ``secret`` against ``stored``; an absent client costs the same time."""
        if not self._slots.acquire(blocking=False):
            raise TokenEndpointBusy
        try:
            future = self._pool.submit(_check, secret, stored)
        except RuntimeError:  # the pool is shut down
            self._slots.release()
            raise TokenEndpointBusy from None
        # The slot is free when the hash is done, not when the caller stops waiting for it.
        future.add_done_callback(lambda _: self._slots.release())
        return await asyncio.wrap_future(future)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _check(secret: str, stored: str | None) -> bool:
    if stored is None:
        burn_equal_time(secret)
        return False
    return verify_secret(secret, stored)
