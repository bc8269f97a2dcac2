"""TOTP against the test vectors of RFC 6238 Appendix B (and RFC 4226 Appendix D)."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.auth.totp import hotp, new_totp_secret, provisioning_uri, totp, verify_totp

# RFC 6238 Appendix B: the seeds are the ASCII digits repeated to the hash's length.
SEEDS = {
    "sha1": b"12345678901234567890",
    "sha256": b"12345678901234567890123456789012",
    "sha512": b"1234567890123456789012345678901234567890123456789012345678901234",
}
VECTORS = [
    (59, "94287082", "46119246", "90693936"),
    (1111111109, "07081804", "68084774", "25091201"),
    (1111111111, "14050471", "67062674", "99943326"),
    (1234567890, "89005924", "91819424", "93441116"),
    (2000000000, "69279037", "90698825", "38618901"),
    (20000000000, "65353130", "77737706", "47863826"),
]


@pytest.mark.parametrize(("at", "sha1", "sha256", "sha512"), VECTORS)
def test_rfc6238_vectors(at: int, sha1: str, sha256: str, sha512: str) -> None:
    for algorithm, expected in (("sha1", sha1), ("sha256", sha256), ("sha512", sha512)):
        assert totp(SEEDS[algorithm], at, digits=8, algorithm=algorithm) == expected


def test_rfc4226_vectors() -> None:
    expected = ["755224", "287082", "359152", "969429", "338314", "254676", "287922"]
    assert [hotp(SEEDS["sha1"], c) for c in range(7)] == expected


def _b32(key: bytes) -> str:
    return base64.b32encode(key).decode().rstrip("=")


def test_a_code_is_good_for_its_step_and_the_neighbours_once() -> None:
    secret = _b32(SEEDS["sha1"])
    now = 1_111_111_111.0
    code = totp(SEEDS["sha1"], now)
    step = verify_totp(secret, code, last_step=None, at=now)
    assert step == int(now // 30)
    assert verify_totp(secret, code, last_step=step, at=now) is None  # replay
    assert verify_totp(secret, code, last_step=None, at=now + 30) == step  # drift, one step
    assert verify_totp(secret, code, last_step=None, at=now + 90) is None
    for bad in ("", "12345", "1234567", "abcdef", "１２３４５６"):
        assert verify_totp(secret, bad, last_step=None, at=now) is None


@given(st.integers(min_value=0, max_value=2**40))
def test_verify_agrees_with_generate(at: int) -> None:
    key = SEEDS["sha1"]
    step = verify_totp(_b32(key), totp(key, at), last_step=None, at=at)
    assert step is not None
    assert abs(step - at // 30) <= 1
    assert hotp(key, step) == totp(key, at)


def test_new_secrets_are_160_bits_and_scannable() -> None:
    secret = new_totp_secret()
    assert len(base64.b32decode(secret + "=" * (-len(secret) % 8))) == 20
    assert new_totp_secret() != secret
    assert provisioning_uri(secret, "zhang", "网关").startswith("otpauth://totp/")
