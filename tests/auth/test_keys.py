"""Signing keys: rotation keeps old tokens verifying until they expire, then prunes the key."""

from __future__ import annotations

import json
import stat
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.auth.keys import KeyStore, KeyStoreError
from tests.auth.helpers import (
    assert_invalid_token,
    bearer,
    claims_for,
    key_file_document,
    segments,
    sign,
    signing_key,
)
from tests.conftest import Gateway


def _kids(gateway: Gateway) -> set[str]:
    return {key["kid"] for key in gateway.client.get("/.well-known/jwks.json").json()["keys"]}


def _store(gateway: Gateway) -> KeyStore:
    settings = gateway.settings
    return KeyStore(settings.resolved_keys_path, token_ttl_seconds=settings.token_ttl_seconds)


def _app_keys(gateway: Gateway) -> KeyStore:
    keys: KeyStore = gateway.client.app.state.runtime.keys  # type: ignore[attr-defined]
    return keys


def test_rotation_keeps_old_tokens_valid_and_signs_new_ones_with_the_new_key(
    make_gateway: Callable[..., Gateway],
) -> None:
    gateway = make_gateway()
    old_token = gateway.token("court")
    old_kid = segments(old_token)[0]["kid"]
    assert _kids(gateway) == {old_kid}

    new_kid = _store(gateway).rotate()  # what `gateway keys rotate` does, from outside the app
    assert new_kid != old_kid
    time.sleep(1.05)  # workers look at the key file's mtime at most once a second

    assert _kids(gateway) == {old_kid, new_kid}
    assert gateway.client.get("/v1/me", headers=bearer(old_token)).status_code == 200
    new_token = gateway.token("police")
    assert segments(new_token)[0]["kid"] == new_kid
    assert gateway.client.get("/v1/me", headers=bearer(new_token)).status_code == 200
    readyz = gateway.client.get("/readyz").json()
    assert readyz["checks"]["signing_key"]["kid"] == new_kid

    # Another worker rotates again and signs at once: an unknown kid makes this worker
    # re-read the key file now, not a second later.
    third_kid = _store(gateway).rotate()
    court = gateway.clients["court"]
    token = sign(claims_for(gateway.settings, court.client_id), signing_key(gateway.settings))
    assert segments(token)[0]["kid"] == third_kid
    assert gateway.client.get("/v1/me", headers=bearer(token)).status_code == 200
    assert gateway.client.get("/v1/me", headers=bearer(old_token)).status_code == 200


def test_key_retired_longer_than_ttl_is_pruned_and_its_tokens_refused(
    make_gateway: Callable[..., Gateway],
) -> None:
    gateway = make_gateway()
    settings = gateway.settings
    store = _store(gateway)
    first_token = gateway.token("court")
    first_kid = segments(first_token)[0]["kid"]
    second_kid = store.rotate()

    # Pretend the first key was retired ttl + 61 s ago and the second just now.
    path = settings.resolved_keys_path
    document = key_file_document(settings)
    now = int(time.time())
    for key in document["keys"]:
        if key["kid"] == first_kid:
            key["retired_at"] = now - settings.token_ttl_seconds - 61
    path.write_text(json.dumps(document))

    third_kid = store.rotate()
    kids = [key["kid"] for key in key_file_document(settings)["keys"]]
    assert first_kid not in kids
    assert kids == [second_kid, third_kid]

    _app_keys(gateway).load(force=True)
    assert _kids(gateway) == {second_kid, third_kid}
    assert_invalid_token(gateway.client.get("/v1/me", headers=bearer(first_token)))


@pytest.mark.parametrize(("retired_ago", "kept"), [(0, True), (300 + 59, True), (300 + 61, False)])
def test_prune_boundary(tmp_path: Path, retired_ago: int, kept: bool) -> None:
    store = KeyStore(tmp_path / "keys.json", token_ttl_seconds=300)
    old = store.rotate()
    document = json.loads(store.path.read_text())
    document["keys"][0]["retired_at"] = int(time.time()) - retired_ago
    store.path.write_text(json.dumps(document))
    new = store.rotate()
    kids = [key["kid"] for key in json.loads(store.path.read_text())["keys"]]
    assert (old in kids) is kept
    assert kids[-1] == new


def test_rotation_retires_only_the_active_key(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys.json", token_ttl_seconds=300)
    first = store.rotate()
    second = store.rotate()
    third = store.rotate()
    document = json.loads(store.path.read_text())
    assert document["active"] == third
    by_kid = {key["kid"]: key for key in document["keys"]}
    assert by_kid[first]["retired_at"] is not None
    assert by_kid[second]["retired_at"] is not None
    assert by_kid[third]["retired_at"] is None
    loaded = store.load(force=True)
    assert loaded.active_kid == third
    assert {key["kid"] for key in loaded.public_jwks["keys"]} == {first, second, third}


def test_key_file_is_private_and_jwks_is_public(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys" / "signing-keys.json", token_ttl_seconds=300)
    kid = store.ensure()
    assert store.ensure() == kid  # idempotent
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.path.parent.stat().st_mode) == 0o700
    raw = json.loads(store.path.read_text())["keys"][0]
    assert raw["d"]  # the file holds the private key ...
    public = store.public_jwks()["keys"]
    assert public == [{k: v for k, v in raw.items() if k in {"kty", "n", "e", "kid", "use", "alg"}}]
    assert "d" not in public[0]  # ... the JWKS never does
    assert not list(store.path.parent.glob(".keys-*"))  # no temp file left behind


def test_keystore_errors(tmp_path: Path) -> None:
    missing = KeyStore(tmp_path / "nope.json", token_ttl_seconds=300)
    with pytest.raises(KeyStoreError, match="no signing keys"):
        missing.load()

    corrupt = tmp_path / "corrupt.json"
    corrupt.write_text("{not json")
    with pytest.raises(KeyStoreError, match="cannot read"):
        KeyStore(corrupt, token_ttl_seconds=300).load()
    with pytest.raises(KeyStoreError, match="cannot read"):
        KeyStore(corrupt, token_ttl_seconds=300).rotate()

    wrong_shape = tmp_path / "wrong.json"
    wrong_shape.write_text(json.dumps({"keys": "x"}))
    with pytest.raises(KeyStoreError, match="not a gateway key file"):
        KeyStore(wrong_shape, token_ttl_seconds=300).load()

    store = KeyStore(tmp_path / "keys.json", token_ttl_seconds=300)
    store.rotate()
    document = json.loads(store.path.read_text())
    document["active"] = "missing-kid"
    store.path.write_text(json.dumps(document))
    with pytest.raises(KeyStoreError, match="missing-kid"):
        KeyStore(store.path, token_ttl_seconds=300).load()


@pytest.mark.parametrize(("alg", "kty"), [("RS256", "RSA"), ("ES256", "EC"), ("Ed25519", "OKP")])
def test_each_algorithm_makes_its_own_key_type(tmp_path: Path, alg: str, kty: str) -> None:
    store = KeyStore(tmp_path / "keys.json", token_ttl_seconds=300, algorithm=alg)
    kid = store.ensure()
    loaded = store.load()
    assert loaded.active_alg == alg
    assert loaded.algorithms == {kid: alg}
    [public] = store.public_jwks()["keys"]
    assert (public["kty"], public["alg"], public["use"]) == (kty, alg, "sig")


def test_unsupported_algorithms_are_refused(tmp_path: Path) -> None:
    with pytest.raises(KeyStoreError, match="unsupported signing algorithm 'HS256'"):
        KeyStore(tmp_path / "keys.json", token_ttl_seconds=300, algorithm="HS256")
    store = KeyStore(tmp_path / "keys.json", token_ttl_seconds=300)
    store.ensure()
    document = json.loads(store.path.read_text())
    document["keys"][0]["alg"] = "PS256"  # a key file edited by hand
    store.path.write_text(json.dumps(document))
    with pytest.raises(KeyStoreError, match="has no supported alg"):
        KeyStore(store.path, token_ttl_seconds=300).load()


def test_ensure_switches_algorithm_only_when_asked(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    first = KeyStore(path, token_ttl_seconds=300, algorithm="Ed25519").ensure()
    rsa = KeyStore(path, token_ttl_seconds=300, algorithm="RS256")
    assert rsa.ensure() == first  # serve and the CLI never rotate behind the operator's back
    second = rsa.ensure(rotate_to_algorithm=True)  # the demo does
    assert second != first
    loaded = rsa.load(force=True)
    assert loaded.algorithms == {first: "Ed25519", second: "RS256"}
    assert rsa.ensure(rotate_to_algorithm=True) == second


def test_an_imported_key_is_reused_only_for_the_same_key(tmp_path: Path) -> None:
    """Imports are remembered by the key's own text: a changed key is imported afresh, and a
    broken one is still refused."""
    store = KeyStore(tmp_path / "keys.json", token_ttl_seconds=300, algorithm="ES256")
    kid = store.rotate()
    first = KeyStore(store.path, token_ttl_seconds=300).load().active_key
    assert KeyStore(store.path, token_ttl_seconds=300).load().active_key is first

    document = json.loads(store.path.read_text())
    [entry] = document["keys"]
    other = KeyStore(tmp_path / "other.json", token_ttl_seconds=300, algorithm="ES256")
    other.rotate()
    [replacement] = json.loads(other.path.read_text())["keys"]
    document["keys"] = [{**replacement, "kid": kid}]
    store.path.write_text(json.dumps(document))
    swapped = KeyStore(store.path, token_ttl_seconds=300).load().active_key
    assert swapped is not first
    assert swapped.as_dict(private=True)["d"] == replacement["d"] != entry["d"]

    document["keys"] = [{**replacement, "kid": kid, "d": "AAAA"}]
    store.path.write_text(json.dumps(document))
    with pytest.raises(KeyStoreError, match="unusable"):
        KeyStore(store.path, token_ttl_seconds=300).load()
