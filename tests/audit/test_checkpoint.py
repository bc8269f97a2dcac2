"""Tests for gateway.audit.checkpoint: C2SP checkpoints in Go signed-note format."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from gateway.audit.checkpoint import (
    MAX_SIGNATURES,
    CheckpointError,
    CheckpointSigner,
    KeyFormatError,
    checkpoint_body,
    key_hash,
    load_or_create_signer,
    load_signer,
    open_checkpoint,
    open_note,
    parse_verifier,
)

ORIGIN = "gateway.example.gov.cn/audit/v1"
ROOT = hashlib.sha256(b"root").digest()
SEED = bytes(range(32))


@pytest.fixture
def signer() -> CheckpointSigner:
    return CheckpointSigner.from_seed("zhengfa-audit", SEED)


def _swap(note: str, old: str, new: str) -> str:
    assert note.count(old) == 1
    return note.replace(old, new)


# ---------------------------------------------------------------------------
# Known answers
# ---------------------------------------------------------------------------

# From the documentation of golang.org/x/mod/sumdb/note (Ed25519 is deterministic).
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_NOTE = (
    GO_TEXT + "\n— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FF"
    "YC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)
GO_ENOCH = (
    "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWL"
    "ox33WWd1RvMc+QQ=\n"
)


def test_go_note_package_known_answer() -> None:
    s = CheckpointSigner.from_private_text(GO_SKEY)
    assert s.private_text() == GO_SKEY
    assert s.verifier_text() == GO_VKEY
    assert s.key_hash == 0xC74F20A3
    assert s.sign_note(GO_TEXT) == GO_NOTE
    note = open_note(GO_NOTE, [parse_verifier(GO_VKEY)])
    assert note.text == GO_TEXT
    assert [(x.name, x.key_hash) for x in note.signatures] == [("PeterNeumann", 0xC74F20A3)]
    # Go's doubly-signed example: the unknown EnochRoot signature is kept as unverified.
    note2 = open_note(GO_NOTE + GO_ENOCH, [parse_verifier(GO_VKEY)])
    assert [x.name for x in note2.unverified] == ["EnochRoot"]


def test_fixed_seed_known_answer(signer: CheckpointSigner) -> None:
    pub = (
        Ed25519PrivateKey.from_private_bytes(SEED)
        .public_key()
        .public_bytes(Encoding.Raw, PublicFormat.Raw)
    )
    khash = hashlib.sha256(b"zhengfa-audit\n\x01" + pub).digest()[:4]
    pub64 = base64.b64encode(b"\x01" + pub).decode()
    seed64 = base64.b64encode(b"\x01" + SEED).decode()
    assert signer.key_hash == int.from_bytes(khash, "big")
    assert key_hash("zhengfa-audit", pub) == int.from_bytes(khash, "big")
    assert signer.verifier_text() == f"zhengfa-audit+{khash.hex()}+{pub64}"
    assert signer.private_text() == f"PRIVATE+KEY+zhengfa-audit+{khash.hex()}+{seed64}"
    # Pinned literals, so that a change in any of the above cannot go unnoticed.
    assert pub.hex() == "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"
    assert khash.hex() == "a382f2ad"
    assert signer.verifier_text() == (
        "zhengfa-audit+a382f2ad+AQOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4"
    )


def test_verifier_text_has_go_shape(signer: CheckpointSigner) -> None:
    for s in (signer, CheckpointSigner.generate("log.example/x")):
        assert re.fullmatch(r"[^+\s]+\+[0-9a-f]{8}\+[A-Za-z0-9+/]{44}", s.verifier_text())
        skey_re = r"PRIVATE\+KEY\+[^+\s]+\+[0-9a-f]{8}\+[A-Za-z0-9+/]{44}"
        assert re.fullmatch(skey_re, s.private_text())
        assert parse_verifier(s.verifier_text()) == s.verifier()
        again = CheckpointSigner.from_private_text(s.private_text())
        assert again.verifier_text() == s.verifier_text()


# ---------------------------------------------------------------------------
# Sign / open
# ---------------------------------------------------------------------------


def test_roundtrip(signer: CheckpointSigner) -> None:
    note = signer.sign_checkpoint(ORIGIN, 1234, ROOT)
    body = f"{ORIGIN}\n1234\n{base64.b64encode(ROOT).decode()}\n"
    assert note.startswith(body + "\n— zhengfa-audit ")
    assert note.endswith("\n")
    cp = open_checkpoint(note, [parse_verifier(signer.verifier_text())])
    assert (cp.origin, cp.size, cp.root, cp.extensions) == (ORIGIN, 1234, ROOT, ())
    assert [s.name for s in cp.signatures] == ["zhengfa-audit"]
    assert open_checkpoint(note.encode(), [signer.verifier()]) == cp
    # The signature covers exactly the body text.
    sig = cp.signatures[0]
    assert signer.verifier().verify(body.encode(), sig.signature)


def test_size_zero_and_max(signer: CheckpointSigner) -> None:
    for size in (0, 2**64 - 1):
        cp = open_checkpoint(signer.sign_checkpoint(ORIGIN, size, ROOT), [signer.verifier()])
        assert cp.size == size


def test_tampering_rejected(signer: CheckpointSigner) -> None:
    note = signer.sign_checkpoint(ORIGIN, 1234, ROOT)
    v = [signer.verifier()]
    other_root = base64.b64encode(hashlib.sha256(b"other").digest()).decode()
    tampered = {
        "size": _swap(note, "\n1234\n", "\n1235\n"),
        "root": _swap(note, base64.b64encode(ROOT).decode(), other_root),
        "origin": _swap(note, ORIGIN, ORIGIN + "x"),
        "missing blank line": _swap(note, "\n\n", "\n"),
        "extra line": _swap(note, "\n\n", "\nextension\n\n"),
    }
    for text in tampered.values():
        with pytest.raises(CheckpointError):
            open_checkpoint(text, v)
    # Flip each byte position of the signature (not the key hash): always rejected.
    line = note.split("\n")[-2]
    blob = bytearray(base64.b64decode(line.split(" ")[2]))
    for pos in range(4, len(blob)):
        bad = bytearray(blob)
        bad[pos] ^= 0x01
        text = _swap(note, line.split(" ")[2], base64.b64encode(bytes(bad)).decode())
        with pytest.raises(CheckpointError, match="invalid signature"):
            open_checkpoint(text, v)


def test_wrong_or_unknown_key_rejected(signer: CheckpointSigner) -> None:
    note = signer.sign_checkpoint(ORIGIN, 7, ROOT)
    other = CheckpointSigner.generate("zhengfa-audit")  # same name, other key
    with pytest.raises(CheckpointError, match="no signature from a known key"):
        open_checkpoint(note, [other.verifier()])
    with pytest.raises(CheckpointError, match="no signature from a known key"):
        open_checkpoint(note, [])
    # Signature line claims the trusted key hash but was made by another key.
    forged = other.sign_checkpoint(ORIGIN, 7, ROOT)
    fline = forged.split("\n")[-2]
    fblob = base64.b64decode(fline.split(" ")[2])
    fake = signer.key_hash.to_bytes(4, "big") + fblob[4:]
    forged = _swap(forged, fline.split(" ")[2], base64.b64encode(fake).decode())
    with pytest.raises(CheckpointError, match="invalid signature"):
        open_checkpoint(forged, [signer.verifier()])


def test_multiple_signatures(signer: CheckpointSigner) -> None:
    other = CheckpointSigner.generate("witness.example")
    note = signer.sign_checkpoint(ORIGIN, 7, ROOT)
    both = note + other.sign_checkpoint(ORIGIN, 7, ROOT).split("\n\n")[1]
    cp = open_checkpoint(both, [signer.verifier()])
    assert [s.name for s in cp.signatures] == ["zhengfa-audit"]
    cp2 = open_checkpoint(both, [signer.verifier(), other.verifier()])
    assert [s.name for s in cp2.signatures] == ["zhengfa-audit", "witness.example"]
    # A known key with a bad signature is fatal even if another known key verifies.
    wline = both.split("\n")[-2]
    wblob = base64.b64decode(wline.split(" ")[2])
    flipped = wblob[:-1] + bytes([wblob[-1] ^ 1])
    bad = _swap(both, wline.split(" ")[2], base64.b64encode(flipped).decode())
    open_checkpoint(bad, [signer.verifier()])  # unknown to this verifier set: ignored
    with pytest.raises(CheckpointError):
        open_checkpoint(bad, [signer.verifier(), other.verifier()])
    # Duplicate signature lines by one key are ignored.
    dup = note + note.split("\n\n")[1]
    assert len(open_checkpoint(dup, [signer.verifier()]).signatures) == 1


@pytest.mark.parametrize(
    "size_line",
    ["01", "00", "-1", "+5", " 5", "5 ", "0x5", "1e3", "５", "", str(2**64), "1_000"],
)
def test_bad_size_lines_rejected(signer: CheckpointSigner, size_line: str) -> None:
    body = f"{ORIGIN}\n{size_line}\n{base64.b64encode(ROOT).decode()}\n"
    with pytest.raises(CheckpointError):
        open_checkpoint(signer.sign_note(body), [signer.verifier()])


@pytest.mark.parametrize(
    "root_line",
    [
        base64.b64encode(ROOT[:31]).decode(),
        base64.b64encode(ROOT + b"\x00").decode(),
        base64.b64encode(ROOT).decode().rstrip("="),
        base64.urlsafe_b64encode(b"\xff" * 32).decode(),
        "not base64!",
        base64.b64encode(ROOT).decode()[:-2] + "R=",  # non-canonical trailing bits
    ],
)
def test_bad_roots_rejected(signer: CheckpointSigner, root_line: str) -> None:
    body = f"{ORIGIN}\n5\n{root_line}\n"
    with pytest.raises(CheckpointError):
        open_checkpoint(signer.sign_note(body), [signer.verifier()])


def test_malformed_notes_rejected(signer: CheckpointSigner) -> None:
    note = signer.sign_checkpoint(ORIGIN, 5, ROOT)
    v = [signer.verifier()]
    sig_line = note.split("\n\n")[1]
    b64 = sig_line.split(" ")[2].strip()
    cases: list[str | bytes] = [
        note[:-1],  # no final newline
        note.split("\n\n")[0] + "\n\n",  # empty signature block
        note.replace("— ", "-- "),  # ASCII dashes instead of em dash
        note.replace("— ", "—"),  # no space after the dash
        note.replace(b64, b64.rstrip("=")),  # unpadded base64
        note.replace(b64, base64.b64encode(b"\x00\x00\x00\x01").decode()),  # too short
        note.replace("— zhengfa-audit", "— zhengfa audit"),
        note.replace("\n5\n", "\n5\r\n"),  # control character
        note + sig_line * MAX_SIGNATURES,  # too many signatures
        f"{ORIGIN}\n5\n{base64.b64encode(ROOT).decode()}\n",  # body only
        b"\xff" + note.encode(),  # invalid UTF-8
    ]
    for text in cases:
        with pytest.raises(CheckpointError):
            open_checkpoint(text, v)


def test_body_shape_enforced(signer: CheckpointSigner) -> None:
    root64 = base64.b64encode(ROOT).decode()
    for body in [f"\n5\n{root64}\n", f"{ORIGIN}\n5\n", f"{ORIGIN}\n\n5\n{root64}\n"]:
        with pytest.raises(CheckpointError):
            open_checkpoint(signer.sign_note(body), [signer.verifier()])
    cp = open_checkpoint(signer.sign_note(f"{ORIGIN}\n5\n{root64}\next 1\n"), [signer.verifier()])
    assert cp.extensions == ("ext 1",)


def test_checkpoint_body_validation() -> None:
    with pytest.raises(ValueError, match="origin"):
        checkpoint_body("", 1, ROOT)
    with pytest.raises(ValueError, match="origin"):
        checkpoint_body("a\nb", 1, ROOT)
    with pytest.raises(ValueError, match="uint64"):
        checkpoint_body(ORIGIN, -1, ROOT)
    with pytest.raises(ValueError, match="uint64"):
        checkpoint_body(ORIGIN, 2**64, ROOT)
    with pytest.raises(ValueError, match="32 bytes"):
        checkpoint_body(ORIGIN, 1, ROOT[:31])


def test_sign_note_requires_trailing_newline(signer: CheckpointSigner) -> None:
    with pytest.raises(CheckpointError, match="newline"):
        signer.sign_note("no newline")
    with pytest.raises(CheckpointError, match="control"):
        signer.sign_note("tab\there\n")


# ---------------------------------------------------------------------------
# Key texts
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["", "has space", "has+plus", "tab\tname", "nbsp\u00a0", "nl\n"])
def test_invalid_key_names(name: str) -> None:
    with pytest.raises(KeyFormatError, match="invalid key name"):
        CheckpointSigner.generate(name)


def test_parse_verifier_errors(signer: CheckpointSigner) -> None:
    vkey = signer.verifier_text()
    name, khash, key64 = vkey.split("+", 2)
    wrong_hash = f"{int(khash, 16) ^ 1:08x}"
    alg2 = base64.b64encode(bytes([2]) + bytes(32)).decode()
    short = base64.b64encode(bytes([1]) + bytes(31)).decode()
    bad = [
        f"{name}+{wrong_hash}+{key64}",  # hash does not match
        f"other+{khash}+{key64}",  # name does not match hash
        f"{name}+{khash[:7]}+{key64}",  # short hash
        f"{name}+{khash[:7]}g+{key64}",  # non-hex
        f"{name}+{khash}+{alg2}",  # unknown algorithm
        f"{name}+{khash}+{short}",  # short key
        f"{name}+{khash}+",  # empty key
        f"{name}+{khash}+{key64.rstrip('=')}!",  # bad base64
        f"+{khash}+{key64}",  # empty name
        name,
    ]
    for text in bad:
        with pytest.raises(KeyFormatError):
            parse_verifier(text)
    assert parse_verifier(vkey + "\n") == signer.verifier()


def test_private_text_errors(signer: CheckpointSigner) -> None:
    skey = signer.private_text()
    with pytest.raises(KeyFormatError, match="PRIVATE"):
        CheckpointSigner.from_private_text(skey.replace("PRIVATE+KEY", "PUBLIC+KEY"))
    with pytest.raises(KeyFormatError, match="PRIVATE"):
        CheckpointSigner.from_private_text(signer.verifier_text())
    parts = skey.split("+")
    parts[3] = f"{int(parts[3], 16) ^ 1:08x}"
    with pytest.raises(KeyFormatError, match="does not match"):
        CheckpointSigner.from_private_text("+".join(parts))
    with pytest.raises(KeyFormatError, match="seed"):
        CheckpointSigner.from_seed("n", b"short")


# ---------------------------------------------------------------------------
# Key files
# ---------------------------------------------------------------------------


def test_load_or_create_signer(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "checkpoint.key"
    created = load_or_create_signer(path, "zhengfa-audit")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) & 0o077 == 0
    assert path.read_text().strip() == created.private_text()
    again = load_or_create_signer(path, "zhengfa-audit")
    assert again.verifier_text() == created.verifier_text()
    assert load_signer(str(path)).verifier_text() == created.verifier_text()
    assert [p.name for p in path.parent.iterdir()] == ["checkpoint.key"]  # no temp files left
    # Under another name (a new origin) the same key signs under that name; the key file is
    # left as it is and the old name stays among the verifiers (old checkpoints verify).
    renamed = load_or_create_signer(path, "gateway.example.gov.cn/audit")
    assert renamed.name == "gateway.example.gov.cn/audit"
    assert renamed.verifier().public_key == created.verifier().public_key
    assert [v.name for v in renamed.verifiers()] == [
        "gateway.example.gov.cn/audit",
        "zhengfa-audit",
    ]
    assert path.read_text().strip() == created.private_text()
    note = created.sign_checkpoint("zhengfa-gateway/audit", 1, bytes(32))
    assert open_checkpoint(note, renamed.verifiers()).size == 1
    with pytest.raises(KeyFormatError):
        load_or_create_signer(path, "has space")


def test_load_signer_errors(tmp_path: Path) -> None:
    missing = tmp_path / "nope.key"
    # The message names the command to run, not an internal function.
    with pytest.raises(FileNotFoundError, match="create it with `gateway audit init-key`"):
        load_signer(missing)
    bad = tmp_path / "bad.key"
    bad.write_text("garbage\n")
    os.chmod(bad, 0o600)
    with pytest.raises(KeyFormatError, match=r"bad\.key"):
        load_signer(bad)
