"""Token signing keys: an Ed25519 JWK set in one private file, rotated in place.

File shape (mode 0600, replaced atomically)::

    {"active": "<kid>", "keys": [{<private OKP JWK>, "created_at": 1700000000,
                                  "retired_at": null | 1700000300}]}

``rotate`` adds a key that signs from then on; the previous key is marked
retired and keeps verifying until every token it signed has expired, after which
the next rotation prunes it. Workers notice a rotation by the file's mtime.
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
from typing import Any

from joserfc.jwk import KeySet, OKPKey

__all__ = ["SIGNING_ALG", "KeyStore", "KeyStoreError"]

SIGNING_ALG = "Ed25519"  # RFC 9864 fully-specified EdDSA
_RETENTION_SKEW_SECONDS = 60


class KeyStoreError(Exception):
    pass


@dataclass(frozen=True)
class _Loaded:
    mtime_ns: int
    active_kid: str
    active_key: OKPKey
    verify_set: KeySet
    public_jwks: dict[str, Any]


class KeyStore:
    def __init__(self, path: Path, *, token_ttl_seconds: int) -> None:
        self.path = path
        self.token_ttl_seconds = token_ttl_seconds
        self._lock = threading.Lock()
        self._loaded: _Loaded | None = None
        self._checked_at = 0.0

    # --- file management (CLI and demo) ---------------------------------------------------

    def rotate(self) -> str:
        """Create a new signing key, retire the active one, prune expired ones. Returns the kid."""
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
        new_key = OKPKey.generate_key(
            "Ed25519", parameters={"kid": kid, "use": "sig", "alg": SIGNING_ALG}
        )
        keep.append({**new_key.as_dict(private=True), "created_at": now, "retired_at": None})
        self._write_document({"active": kid, "keys": keep})
        self._loaded = None
        return kid

    def ensure(self) -> str:
        """Create the first key if there is none; return the active kid."""
        if not self.path.exists():
            return self.rotate()
        return self.load().active_kid

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
            keys: list[Any] = []
            for raw in document["keys"]:
                fields = {k: v for k, v in raw.items() if k not in ("created_at", "retired_at")}
                keys.append(OKPKey.import_key(fields))
            by_kid = {key.kid: key for key in keys}
            active = by_kid.get(document["active"])
            if active is None:
                raise KeyStoreError(f"{self.path}: active key {document['active']!r} is missing")
            verify_set = KeySet(keys)
            self._loaded = _Loaded(
                mtime_ns=mtime_ns,
                active_kid=document["active"],
                active_key=active,
                verify_set=verify_set,
                public_jwks=dict(verify_set.as_dict(private=False)),
            )
            return self._loaded

    def public_jwks(self) -> dict[str, Any]:
        return self.load().public_jwks
