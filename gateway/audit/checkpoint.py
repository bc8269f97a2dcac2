"""Signed tree heads: C2SP tlog-checkpoint bodies in the signed-note format, Ed25519.

Wire formats are those of Go's ``golang.org/x/mod/sumdb/note`` and
https://c2sp.org/tlog-checkpoint, so Go tooling can verify our checkpoints.

Checkpoint body (the signed message, UTF-8, every line ending in ``\\n``)::

    <origin>
    <tree size, decimal, no leading zeros>
    <root hash, standard base64 with padding>

Signed note = body, a blank line, then one or more signature lines::

    — <key name> <base64(key hash (4 bytes, big-endian) || Ed25519 signature (64 bytes))>

Key hash = first 4 bytes of ``SHA-256(name || "\\n" || 0x01 || public key)``.
Verifier key text: ``<name>+<8 hex digits of key hash>+<base64(0x01 || public key)>``.
Signer key text (secret): ``PRIVATE+KEY+<name>+<8 hex>+<base64(0x01 || 32-byte seed)>``.
Key names are non-empty and contain neither whitespace nor ``+``.

The gateway names its key after the log's origin, as C2SP tlog-checkpoint recommends
(``GATEWAY_AUDIT_ORIGIN``, a schema-less URL such as ``gateway.example.gov.cn/audit``). The
key file keeps the name it was created with; a signer loaded under another name (the origin)
signs with that name, and :meth:`CheckpointSigner.verifiers` also gives the verifier under the
file's name, so checkpoints signed before a rename keep verifying.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from gateway.audit.merkle import HASH_SIZE

__all__ = [
    "ALG_ED25519",
    "MAX_SIGNATURES",
    "Checkpoint",
    "CheckpointError",
    "CheckpointSigner",
    "KeyFormatError",
    "Note",
    "NoteSignature",
    "Verifier",
    "check_key_name",
    "checkpoint_body",
    "key_hash",
    "load_or_create_signer",
    "load_signer",
    "open_checkpoint",
    "open_note",
    "parse_checkpoint_body",
    "parse_verifier",
]

ALG_ED25519 = 0x01
"""Signed-note algorithm identifier for Ed25519."""

MAX_SIGNATURES = 100
"""Notes with more signature lines than this are rejected (as Go's ``note.Open`` does)."""

_SIG_PREFIX = "— "  # EM DASH U+2014, SPACE
_SIZE_RE = re.compile(r"0|[1-9][0-9]{0,19}")
_UINT64_MAX = (1 << 64) - 1
_ED25519_SIG_SIZE = 64


class CheckpointError(ValueError):
    """A signed note or checkpoint is malformed, unsigned by a known key, or forged."""


class KeyFormatError(ValueError):
    """A verifier or signer key text (or key name) is malformed or inconsistent."""


# ---------------------------------------------------------------------------
# Keys
# ---------------------------------------------------------------------------


def _is_valid_name(name: str) -> bool:
    """Go ``isValidName``: non-empty, valid UTF-8, no Unicode whitespace, no ``+``."""
    if not name or "+" in name:
        return False
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in name):
        return False
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_key_name(name: str) -> None:
    """Raise :class:`KeyFormatError` unless ``name`` can name a note key (and so an origin)."""
    _check_name(name)


def _check_name(name: str) -> None:
    if not _is_valid_name(name):
        raise KeyFormatError(
            f"invalid key name {name!r}: must be non-empty, without whitespace or '+'"
        )


def _b64decode_strict(text: str) -> bytes:
    """Decode standard padded base64, rejecting any non-canonical encoding."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise ValueError("invalid base64") from None
    if base64.b64encode(raw).decode("ascii") != text:
        raise ValueError("non-canonical base64")
    return raw


def key_hash(name: str, public_key: bytes) -> int:
    """Return the signed-note key hash of an Ed25519 ``public_key`` (32 bytes) as a uint32.

    ``int.from_bytes(SHA-256(name || "\\n" || 0x01 || public_key)[:4], "big")``.
    """
    _check_name(name)
    if len(public_key) != 32:
        raise KeyFormatError("Ed25519 public key must be 32 bytes")
    digest = hashlib.sha256(
        name.encode("utf-8") + b"\n" + bytes([ALG_ED25519]) + public_key
    ).digest()
    return int.from_bytes(digest[:4], "big")


@dataclass(frozen=True, slots=True)
class Verifier:
    """A known Ed25519 note-verification key (build with :func:`parse_verifier`)."""

    name: str
    key_hash: int
    public_key: bytes

    def __post_init__(self) -> None:
        if key_hash(self.name, self.public_key) != self.key_hash:
            raise KeyFormatError(f"key hash does not match key {self.name!r}")

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Return whether ``signature`` is a valid Ed25519 signature of ``message``."""
        if len(signature) != _ED25519_SIG_SIZE:
            return False
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True

    def text(self) -> str:
        """Return the verifier key text ``<name>+<8 hex>+<base64(0x01 || key)>``."""
        key64 = base64.b64encode(bytes([ALG_ED25519]) + self.public_key).decode("ascii")
        return f"{self.name}+{self.key_hash:08x}+{key64}"


def _parse_key_parts(name: str, hash16: str, key64: str) -> tuple[int, bytes]:
    """Validate the shared ``name+hash+keydata`` parts; return (hash, 32-byte key material)."""
    _check_name(name)
    if not re.fullmatch(r"[0-9a-fA-F]{8}", hash16):
        raise KeyFormatError("key hash must be 8 hexadecimal digits")
    try:
        key = _b64decode_strict(key64)
    except ValueError as exc:
        raise KeyFormatError(f"key data: {exc}") from None
    if not key:
        raise KeyFormatError("key data is empty")
    if key[0] != ALG_ED25519:
        raise KeyFormatError(f"unknown key algorithm {key[0]} (only 1 = Ed25519)")
    if len(key) != 33:
        raise KeyFormatError("Ed25519 key data must be 32 bytes after the algorithm byte")
    return int(hash16, 16), key[1:]


def parse_verifier(text: str) -> Verifier:
    """Parse a verifier key text ``<name>+<8 hex>+<base64(0x01 || public key)>``.

    Raises :class:`KeyFormatError` if malformed, not Ed25519, or if the key hash
    does not match the name and key.
    """
    name, _, rest = text.strip().partition("+")
    hash16, _, key64 = rest.partition("+")
    khash, public_key = _parse_key_parts(name, hash16, key64)
    return Verifier(name, khash, public_key)


class CheckpointSigner:
    """An Ed25519 signed-note signing key with its name; signs checkpoints."""

    __slots__ = ("_key", "_stored_name", "_verifier")

    def __init__(
        self, name: str, private_key: Ed25519PrivateKey, *, stored_name: str | None = None
    ) -> None:
        """Wrap ``private_key`` under key ``name`` (see :meth:`generate` / :meth:`from_seed`).

        ``stored_name`` is the name in the key file, when the signer signs under another.
        """
        _check_name(name)
        pub = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self._key = private_key
        self._verifier = Verifier(name, key_hash(name, pub), pub)
        self._stored_name = stored_name or name

    def renamed(self, name: str) -> CheckpointSigner:
        """The same key signing under ``name`` (the file's name is remembered)."""
        if name == self.name:
            return self
        return CheckpointSigner(name, self._key, stored_name=self._stored_name)

    def verifiers(self, *other_names: str) -> list[Verifier]:
        """Verifiers of this key under its name, the key file's name and ``other_names``:
        every name a checkpoint in this log may have been signed under."""
        pub = self._verifier.public_key
        names = dict.fromkeys([self.name, self._stored_name, *other_names])
        return [Verifier(n, key_hash(n, pub), pub) for n in names if _is_valid_name(n)]

    @classmethod
    def generate(cls, name: str) -> CheckpointSigner:
        """Create a signer with a fresh random key."""
        return cls(name, Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, name: str, seed: bytes) -> CheckpointSigner:
        """Create a signer from a 32-byte Ed25519 seed (RFC 8032 private key)."""
        if len(seed) != 32:
            raise KeyFormatError("Ed25519 seed must be 32 bytes")
        return cls(name, Ed25519PrivateKey.from_private_bytes(seed))

    @classmethod
    def from_private_text(cls, text: str) -> CheckpointSigner:
        """Parse ``PRIVATE+KEY+<name>+<8 hex>+<base64(0x01 || seed)>``.

        Raises :class:`KeyFormatError` if malformed or if the key hash does not
        match the public key derived from the seed.
        """
        parts = text.strip().split("+", 4)
        if len(parts) != 5 or parts[0] != "PRIVATE" or parts[1] != "KEY":
            raise KeyFormatError("signer key must start with 'PRIVATE+KEY+'")
        khash, seed = _parse_key_parts(parts[2], parts[3], parts[4])
        signer = cls.from_seed(parts[2], seed)
        if signer.key_hash != khash:
            raise KeyFormatError("signer key hash does not match its public key")
        return signer

    @property
    def name(self) -> str:
        """The key name (appears in signature lines)."""
        return self._verifier.name

    @property
    def key_hash(self) -> int:
        """The uint32 key hash."""
        return self._verifier.key_hash

    def verifier(self) -> Verifier:
        """The matching public :class:`Verifier`."""
        return self._verifier

    def verifier_text(self) -> str:
        """The public verifier key text, safe to distribute."""
        return self._verifier.text()

    def private_text(self) -> str:
        """The secret signer key text (keep it secret: anyone holding it can sign)."""
        seed = self._key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        key64 = base64.b64encode(bytes([ALG_ED25519]) + seed).decode("ascii")
        return f"PRIVATE+KEY+{self.name}+{self.key_hash:08x}+{key64}"

    def sign_note(self, text: str) -> str:
        """Sign arbitrary note ``text`` (must end in newline); return the signed note."""
        _check_note_chars(text)
        if not text.endswith("\n"):
            raise CheckpointError("note text must end with a newline")
        sig = self._key.sign(text.encode("utf-8"))
        blob = base64.b64encode(self.key_hash.to_bytes(4, "big") + sig).decode("ascii")
        return f"{text}\n{_SIG_PREFIX}{self.name} {blob}\n"

    def sign_checkpoint(self, origin: str, size: int, root: bytes) -> str:
        """Return the signed note of the checkpoint ``(origin, size, root)``."""
        return self.sign_note(checkpoint_body(origin, size, root))

    def __repr__(self) -> str:
        return f"CheckpointSigner({self.verifier_text()!r})"


# ---------------------------------------------------------------------------
# Notes
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NoteSignature:
    """One signature line of a note: key name, key hash and raw signature bytes."""

    name: str
    key_hash: int
    signature: bytes


@dataclass(frozen=True, slots=True)
class Note:
    """An opened note: its text and the signatures verified by known keys."""

    text: str
    signatures: tuple[NoteSignature, ...]
    unverified: tuple[NoteSignature, ...] = ()


def _check_note_chars(text: str) -> None:
    for ch in text:
        if ch != "\n" and ord(ch) < 0x20:
            raise CheckpointError("malformed note: contains an ASCII control character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise CheckpointError("malformed note: not valid UTF-8") from None


def open_note(note: str | bytes, verifiers: Sequence[Verifier]) -> Note:
    """Parse a signed note and verify its signatures, like Go's ``note.Open``.

    Signatures by keys not in ``verifiers`` are returned as ``unverified``; a
    signature by a known key that does not verify is an error, and so is a note
    without any signature from a known key. Raises :class:`CheckpointError`.
    """
    if isinstance(note, bytes):
        try:
            note = note.decode("utf-8")
        except UnicodeDecodeError:
            raise CheckpointError("malformed note: not valid UTF-8") from None
    _check_note_chars(note)

    known: dict[tuple[str, int], Verifier] = {}
    for v in verifiers:
        if (v.name, v.key_hash) in known and known[(v.name, v.key_hash)] != v:
            raise CheckpointError(f"ambiguous verifier key {v.name}+{v.key_hash:08x}")
        known[(v.name, v.key_hash)] = v

    split = note.rfind("\n\n")
    if split < 0:
        raise CheckpointError("malformed note: no blank line before the signatures")
    text, sig_block = note[: split + 1], note[split + 2 :]
    if not sig_block or not sig_block.endswith("\n"):
        raise CheckpointError("malformed note: signature block missing or not newline-terminated")
    message = text.encode("utf-8")

    lines = sig_block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise CheckpointError(f"malformed note: more than {MAX_SIGNATURES} signatures")
    verified: list[NoteSignature] = []
    unverified: list[NoteSignature] = []
    seen: set[tuple[str, int]] = set()
    for line in lines:
        if not line.startswith(_SIG_PREFIX):
            raise CheckpointError("malformed note: signature line must start with '— '")
        name, _, b64 = line[len(_SIG_PREFIX) :].partition(" ")
        try:
            blob = _b64decode_strict(b64)
        except ValueError:
            raise CheckpointError("malformed note: signature is not valid base64") from None
        if not _is_valid_name(name) or len(blob) < 5:
            raise CheckpointError("malformed note: bad signature line")
        sig = NoteSignature(name, int.from_bytes(blob[:4], "big"), blob[4:])
        key = (sig.name, sig.key_hash)
        verifier = known.get(key)
        if verifier is None:
            if sig not in unverified:
                unverified.append(sig)
            continue
        if key in seen:
            continue
        seen.add(key)
        if not verifier.verify(message, sig.signature):
            raise CheckpointError(f"invalid signature for key {name}+{sig.key_hash:08x}")
        verified.append(sig)

    if not verified:
        keys = ", ".join(f"{s.name}+{s.key_hash:08x}" for s in unverified)
        raise CheckpointError(f"note has no signature from a known key (signed by: {keys})")
    return Note(text, tuple(verified), tuple(unverified))


# ---------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A verified checkpoint (signed tree head)."""

    origin: str
    size: int
    root: bytes
    signatures: tuple[NoteSignature, ...]
    extensions: tuple[str, ...] = ()


def checkpoint_body(origin: str, size: int, root: bytes) -> str:
    """Return the checkpoint body ``origin\\nsize\\nbase64(root)\\n`` (the signed text).

    ``origin`` must be a non-empty single line without control characters,
    ``0 <= size < 2**64`` and ``root`` exactly 32 bytes; else ``ValueError``.
    """
    if not origin or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in origin):
        raise ValueError("origin must be a non-empty line without control characters")
    if not 0 <= size <= _UINT64_MAX:
        raise ValueError(f"tree size {size} is outside the uint64 range")
    if len(root) != HASH_SIZE:
        raise ValueError(f"root hash must be {HASH_SIZE} bytes, got {len(root)}")
    return f"{origin}\n{size}\n{base64.b64encode(root).decode('ascii')}\n"


def parse_checkpoint_body(text: str) -> tuple[str, int, bytes, tuple[str, ...]]:
    """Parse a checkpoint body into ``(origin, size, root, extension lines)``.

    Does not check signatures. Raises :class:`CheckpointError` on a missing final
    newline, empty lines, an empty origin, a size that is not canonical decimal
    (no sign, no leading zeros, ASCII digits, < 2**64), or a root that is not
    canonical base64 of exactly 32 bytes.
    """
    if not text.endswith("\n"):
        raise CheckpointError("malformed checkpoint: body must end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise CheckpointError("malformed checkpoint: need origin, size and root lines")
    if any(not line for line in lines):
        raise CheckpointError("malformed checkpoint: empty line in body")
    origin, size_line, root_line = lines[0], lines[1], lines[2]
    if not _SIZE_RE.fullmatch(size_line) or int(size_line) > _UINT64_MAX:
        raise CheckpointError(f"malformed checkpoint: bad tree size {size_line!r}")
    try:
        root = _b64decode_strict(root_line)
    except ValueError:
        raise CheckpointError("malformed checkpoint: root hash is not valid base64") from None
    if len(root) != HASH_SIZE:
        raise CheckpointError(f"malformed checkpoint: root hash must be {HASH_SIZE} bytes")
    return origin, int(size_line), root, tuple(lines[3:])


def open_checkpoint(note_text: str | bytes, verifiers: Sequence[Verifier]) -> Checkpoint:
    """Verify a signed checkpoint note and parse it.

    At least one signature by a key in ``verifiers`` must verify and no signature
    by a known key may fail (see :func:`open_note`). Raises :class:`CheckpointError`
    for malformed notes, unknown keys, bad signatures, bad size lines and roots
    that are not 32 bytes. The caller must still check ``origin`` against the
    log it expects.
    """
    note = open_note(note_text, verifiers)
    origin, size, root, extensions = parse_checkpoint_body(note.text)
    return Checkpoint(origin, size, root, note.signatures, extensions)


# ---------------------------------------------------------------------------
# Key files
# ---------------------------------------------------------------------------


def load_signer(path: str | os.PathLike[str], name: str | None = None) -> CheckpointSigner:
    """Load a signer key file (one ``PRIVATE+KEY+...`` line), signing under ``name`` if given.

    Raises ``FileNotFoundError`` with an explanatory message if the file is
    missing, and :class:`KeyFormatError` if its content is malformed.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(
            f"checkpoint signing key file {str(p)!r} does not exist; "
            "create it with `gateway audit init-key`"
        ) from None
    try:
        signer = CheckpointSigner.from_private_text(text)
    except KeyFormatError as exc:
        raise KeyFormatError(f"{p}: {exc}") from None
    return signer if name is None else signer.renamed(name)


def load_or_create_signer(path: str | os.PathLike[str], name: str) -> CheckpointSigner:
    """Load the signer key at ``path``, or generate one named ``name`` and write it there.

    A new file is created with mode 0600 (parent directories with 0700), written
    to a temporary file and linked into place so a concurrent caller or a crash
    never leaves a partial key. An existing key made under another name signs under
    ``name`` (its verifiers still include the old name: see :meth:`CheckpointSigner.verifiers`).
    """
    _check_name(name)
    p = Path(path)
    if not p.exists():
        p.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        signer = CheckpointSigner.generate(name)
        tmp = p.with_name(f".{p.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            try:
                os.fchmod(fd, 0o600)
                os.write(fd, (signer.private_text() + "\n").encode("ascii"))
                os.fsync(fd)
            finally:
                os.close(fd)
            # Losing a creation race is fine: use the key the other process wrote.
            with contextlib.suppress(FileExistsError):
                os.link(tmp, p)
        finally:
            tmp.unlink(missing_ok=True)
    return load_signer(p, name)
