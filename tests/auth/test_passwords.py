"""Client secrets: random, and stored only as salted scrypt hashes."""

from __future__ import annotations

import pytest

from gateway.auth.passwords import burn_equal_time, hash_secret, new_client_secret, verify_secret
from tests.conftest import PRODUCTION_SCRYPT_N, TEST_SCRYPT_N


def test_hash_format_and_verification(production_secret_cost: None) -> None:
    secret = new_client_secret()
    assert len(secret) >= 43  # 32 random bytes
    stored = hash_secret(secret)
    scheme, n, r, p, salt, digest = stored.split("$")
    assert (scheme, n, r, p) == ("scrypt", "16384", "8", "1")
    assert salt
    assert digest
    assert secret not in stored
    assert verify_secret(secret, stored)
    assert not verify_secret(secret[:-1], stored)
    assert not verify_secret(secret + " ", stored)
    assert not verify_secret("", stored)


def test_the_suite_hashes_at_a_lower_cost_than_production() -> None:
    """tests/conftest.py lowers the cost for speed; this module checks production's."""
    assert PRODUCTION_SCRYPT_N == 2**14
    assert hash_secret("x").split("$")[1] == str(TEST_SCRYPT_N)
    assert TEST_SCRYPT_N < PRODUCTION_SCRYPT_N


def test_same_secret_hashes_differently() -> None:
    assert hash_secret("same") != hash_secret("same")
    assert new_client_secret() != new_client_secret()


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "plain",
        "bcrypt$x$y$z$a$b",
        "scrypt$16384$8$1$%%%$%%%",
        "scrypt$x$8$1$AAAA$AAAA",
        "$$$$$",
    ],
)
def test_malformed_stored_hash_never_verifies(stored: str) -> None:
    assert verify_secret("anything", stored) is False


def test_burn_equal_time_runs_without_a_client() -> None:
    burn_equal_time("whatever")
