"""Deployment-wide symmetric keys: from a secret setting, or a key file every worker shares.

The search cursor key and the audit criteria key are made the same way: a secret given in the
environment (at least 32 characters; HKDF-SHA256 derives the key, which also separates it from
any other use of the same secret), or else 32 random bytes that the first worker to start
writes to ``data_dir/keys/NAME`` and every other worker on that data directory reads.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from pathlib import Path

import structlog
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import SecretStr

from gateway.settings import Settings, SettingsError

__all__ = ["MIN_SECRET_CHARS", "load_deployment_key", "load_or_create_key_file"]

log = structlog.get_logger(__name__)

MIN_SECRET_CHARS = 32


def load_deployment_key(
    settings: Settings,
    secret: SecretStr | None,
    *,
    variable: str,
    file_name: str,
    context: str,
    what: str,
) -> bytes:
    """The 32-byte key for ``context``: from ``secret`` (env ``variable``) or the shared file."""
    text = secret.get_secret_value() if secret else ""
    if text:
        if len(text) < MIN_SECRET_CHARS and not settings.is_demo:
            raise SettingsError(
                f"{variable} must be at least {MIN_SECRET_CHARS} characters "
                "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
            )
        material = text.encode()
    else:
        path = settings.data_dir / "keys" / file_name
        try:
            material = load_or_create_key_file(path, what=what, variable=variable)
        except OSError as exc:
            raise SettingsError(
                f"cannot read or create the {what} {path}: {exc.strerror or exc}; "
                f"make the directory writable or set {variable}"
            ) from exc
    return HKDF(algorithm=SHA256(), length=32, salt=None, info=context.encode()).derive(material)


def load_or_create_key_file(path: Path, *, what: str, variable: str) -> bytes:
    """32 bytes from ``path``, made (mode 0600) by the first caller if it does not exist."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        staged = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
        descriptor = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="ascii") as handle:
            handle.write(base64.b64encode(secrets.token_bytes(32)).decode("ascii") + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            # A hard link appears whole and refuses to replace: when workers start together,
            # the first one's key wins and every other worker reads that one.
            os.link(staged, path)
            log.info(f"created the {what}", path=str(path))
        except FileExistsError:
            pass
        finally:
            staged.unlink()
    try:
        key = base64.b64decode(path.read_text(encoding="ascii").strip(), validate=True)
    except (ValueError, binascii.Error):
        key = b""
    if len(key) != 32:
        raise SettingsError(
            f"the {what} {path} is not 32 base64 bytes: delete it to make a new one "
            f"or set {variable}"
        )
    return key
