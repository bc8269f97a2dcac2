"""Token signing keys: a JWK set in one private file, rotated in place.

File shape (mode 0600, replaced atomically)::

    {"active": "<kid>", "keys": [{<private JWK with "alg">, "created_at": 1700000000,
                                  "retired_at": null | 1700000300}]}

Each key carries its algorithm (``alg``): RS256 (the default; RFC 9068 §2.1 makes it the
one algorithm every resource server must support), ES256 or Ed25519 (RFC 9864). ``rotate``
adds a key of the configured algorithm that signs from then on; the previous key, whatever
its algorithm, is marked retired and keeps verifying until every token it signed has
expired, after which the next rotation prunes it. Workers notice a rotation by the file's
mtime.
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from joserfc.errors import JoseError
from joserfc.jwk import ECKey, JWKRegistry, KeySet, OKPKey, RSAKey

__all__ = [
    "DEFAULT_SIGNING_ALG",
    "SIGNING_ALGORITHMS",
    "KeyStore",
    "KeyStoreError",
    "SigningAlg",
    "generate_signing_key",
]

SigningAlg = Literal["RS256", "ES256", "Ed25519"]
SIGNING_ALGORITHMS: tuple[str, ...] = get_args(SigningAlg)
DEFAULT_SIGNING_ALG: SigningAlg = "RS256"
# NIST SP 800-57 Part 1 rev. 5: 3072-bit RSA for protection beyond 2030.
_RSA_BITS = 3072
_RETENTION_SKEW_SECONDS = 60

SigningKey = RSAKey | ECKey | OKPKey
# Keys imported in this process, by their JWK text: importing an RSA private key checks it
# (~0.1 s), and every store opened on the same file (each app, CLI command) did it again.
_IMPORTED: dict[str, SigningKey] = {}
_IMPORTED_MAX = 32


def generate_signing_key(alg: str, kid: str) -> SigningKey:
    parameters: Any = {"kid": kid, "use": "sig", "alg": alg}
    if alg == "RS256":
        return RSAKey.generate_key(_RSA_BITS, parameters=parameters)
    if alg == "ES256":
        return ECKey.generate_key("P-256", parameters=parameters)
    if alg == "Ed25519":
        return OKPKey.generate_key("Ed25519", parameters=parameters)
    raise KeyStoreError(f"unsupported signing algorithm {alg!r}; use one of {SIGNING_ALGORITHMS}")


class KeyStoreError(Exception):
    pass


@dataclass(frozen=True)
class _Loaded:
    mtime_ns: int
    active_kid: str
    active_key: SigningKey
    active_alg: str
    verify_set: KeySet
    # kid -> alg: a token verifies only with its key's own algorithm (no alg confusion).
    algorithms: dict[str, str]
    public_jwks: dict[str, Any]


class KeyStore:
    def __init__(
        self, path: Path, *, token_ttl_seconds: int, algorithm: str = DEFAULT_SIGNING_ALG
    ) -> None:
        if algorithm not in SIGNING_ALGORITHMS:
            raise KeyStoreError(
                f"unsupported signing algorithm {algorithm!r}; use one of "
                f"{', '.join(SIGNING_ALGORITHMS)}"
            )
        self.path = path
        self.token_ttl_seconds = token_ttl_seconds
        self.algorithm = algorithm
        self._lock = threading.Lock()
        self._loaded: _Loaded | None = None
        self._checked_at = 0.0

    # --- file management (CLI and demo) ---------------------------------------------------

    def rotate(self) -> str:
        """Create a new key of ``algorithm``, retire the active one, prune expired ones.

        Returns the new kid.
        """
        now = int(time.time())
        document = self._read_document() if self.path.exists() else {"keys": []}
        keep: list[dict[str, Any]] = []
        for key in document["keys"]:
            if key.get("retired_at") is None:
                key["retired_at"] = now
            expired_at = key["retired_at"] + self.token_ttl_seconds + _RETENTION_SKEW_SECONDS
            if expired_at > now:
                keep.append(key)
        kid = f"{time.strftime('%Y%m%d', time.gmtime(now))}-{secrets.token_hex(4)}"
        new_key = generate_signing_key(self.algorithm, kid)
        keep.append({**new_key.as_dict(private=True), "created_at": now, "retired_at": None})
        self._write_document({"active": kid, "keys": keep})
        self._loaded = None
        return kid

    def ensure(self, *, rotate_to_algorithm: bool = False) -> str:
        """Create the first key if there is none; return the active kid.

        With ``rotate_to_algorithm``, an active key of another algorithm is rotated out (the
        demo does this when its configured algorithm changed; old tokens keep verifying).
        """
        if not self.path.exists():
            return self.rotate()
        loaded = self.load(force=True)
        if rotate_to_algorithm and loaded.active_alg != self.algorithm:
            return self.rotate()
        return loaded.active_kid

    def _read_document(self) -> dict[str, Any]:
        try:
            document: dict[str, Any] = json.loads(self.path.read_text())
        except (OSError, ValueError) as exc:
            raise KeyStoreError(f"cannot read signing keys at {self.path}: {exc}") from exc
        if not isinstance(document.get("keys"), list) or "active" not in document:
            raise KeyStoreError(f"{self.path} is not a gateway key file")
        return document

    def _write_document(self, document: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".keys-")
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump(document, handle, indent=1)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    # --- runtime ---------------------------------------------------------------------------

    def load(self, *, force: bool = False) -> _Loaded:
        """The current keys, re-read when the file changed (checked at most once a second)."""
        loaded = self._loaded
        now = time.monotonic()
        if loaded is not None and not force and now - self._checked_at < 1.0:
            return loaded
        with self._lock:
            try:
                mtime_ns = self.path.stat().st_mtime_ns
            except OSError as exc:
                raise KeyStoreError(f"no signing keys at {self.path}") from exc
            self._checked_at = now
            if self._loaded is not None and self._loaded.mtime_ns == mtime_ns:
                return self._loaded
            document = self._read_document()
            keys = [self._import(raw) for raw in document["keys"]]
            by_kid = {key.kid: key for key in keys}
            active = by_kid.get(document["active"])
            if active is None:
                raise KeyStoreError(f"{self.path}: active key {document['active']!r} is missing")
            verify_set = KeySet(list[Any](keys))
            algorithms = {str(key.kid): str(key.alg) for key in keys}
            self._loaded = _Loaded(
                mtime_ns=mtime_ns,
                active_kid=document["active"],
                active_key=active,
                active_alg=algorithms[document["active"]],
                verify_set=verify_set,
                algorithms=algorithms,
                # Each published key names its algorithm ("alg"): verifiers such as PyJWT's
                # PyJWKClient pick the algorithm from it.
                public_jwks=dict(verify_set.as_dict(private=False)),
            )
            return self._loaded

    def _import(self, raw: dict[str, Any]) -> SigningKey:
        fields = {k: v for k, v in raw.items() if k not in ("created_at", "retired_at")}
        if fields.get("alg") not in SIGNING_ALGORITHMS:
            raise KeyStoreError(
                f"{self.path}: key {fields.get('kid')!r} has no supported alg "
                f"({', '.join(SIGNING_ALGORITHMS)})"
            )
        memo = json.dumps(fields, sort_keys=True)
        key = _IMPORTED.get(memo)
        if key is not None:
            return key
        try:
            imported = JWKRegistry.import_key(fields)
        except (JoseError, ValueError, TypeError) as exc:
            raise KeyStoreError(
                f"{self.path}: key {fields.get('kid')!r} is unusable: {exc}"
            ) from exc
        if not isinstance(imported, RSAKey | ECKey | OKPKey):
            raise KeyStoreError(f"{self.path}: key {fields.get('kid')!r} is not a signing key")
        if len(_IMPORTED) >= _IMPORTED_MAX:
            _IMPORTED.clear()
        _IMPORTED[memo] = imported
        return imported

    def public_jwks(self) -> dict[str, Any]:
        return self.load().public_jwks
