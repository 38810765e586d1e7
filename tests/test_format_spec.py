"""The committed vectors, read by our reader and by an independent reader written from docs/FORMAT.md
with other libraries (``cryptography`` for AES-GCM, the standard library for HKDF/HMAC)."""

import base64
import hashlib
import hmac
import io
import json
import struct
from pathlib import Path

import pytest
import zstandard
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from strix.crypto.container import ContainerReader
from strix.crypto.keys import Keyring

VECTORS = Path(__file__).parent / "vectors"
NAMES = sorted(p.stem for p in VECTORS.glob("*.strix"))


def hkdf_sha256(ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    okm, block = b"", b""
    for counter in range(1, -(-length // 32) + 1):
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        okm += block
    return okm[:length]


def independent_reader(blob: bytes, master: bytes) -> tuple[dict, bytes, dict]:
    """Straight from docs/FORMAT.md; shares no code with strix.crypto."""
    assert blob[:8] == b"STRIXDP\n"
    version, length = struct.unpack(">HI", blob[8:14])
    assert version == 1
    header_json = blob[14 : 14 + length]
    mac = blob[14 + length : 14 + length + 32]
    header = json.loads(header_json)
    salt = base64.b64decode(header["salt"])
    okm = hkdf_sha256(master, salt, b"strix-container v1", 64)
    header_key, payload_key = okm[:32], okm[32:]
    assert hmac.compare_digest(mac, hmac.new(header_key, blob[: 14 + length], hashlib.sha256).digest())
    aad = hashlib.sha256(blob[: 14 + length + 32]).digest()
    prefix = base64.b64decode(header["nonce_prefix"])
    offset, index, compressed, trailer = 14 + length + 32, 0, b"", None
    while trailer is None:
        flag, size = struct.unpack(">BI", blob[offset : offset + 5])
        sealed = blob[offset + 5 : offset + 5 + size]
        nonce = prefix + struct.pack(">IB", index, flag)
        plain = AESGCM(payload_key).decrypt(nonce, sealed, aad)
        if flag == 1:
            trailer = json.loads(plain)
        else:
            compressed += plain
        offset += 5 + size
        index += 1
    assert offset == len(blob), "no bytes may follow the final chunk"
    plaintext = zstandard.ZstdDecompressor().decompressobj().decompress(compressed)
    assert hashlib.sha256(plaintext).hexdigest() == trailer["sha256"]
    assert len(plaintext) == trailer["plaintext_bytes"]
    return header, plaintext, trailer


def load(name):
    key_text = (VECTORS / f"{name}.key").read_text().strip()
    return (VECTORS / f"{name}.strix").read_bytes(), key_text, (VECTORS / f"{name}.plain").read_bytes()


def test_vectors_cover_an_archive_a_backup_and_several_chunks():
    read = {}
    for name in NAMES:
        blob, key, _ = load(name)
        header, _, trailer = independent_reader(blob, base64.b64decode(key))
        read[name] = (header["kind"], trailer["chunks"])
    assert {kind for kind, _ in read.values()} == {"archive", "backup"}
    assert max(chunks for _, chunks in read.values()) > 3


@pytest.mark.parametrize("name", NAMES)
def test_our_reader_decrypts_each_vector(name):
    blob, key, plain = load(name)
    reader = ContainerReader(io.BytesIO(blob), Keyring.from_values(key))
    assert b"".join(reader) == plain


@pytest.mark.parametrize("name", NAMES)
def test_a_reader_written_from_the_spec_decrypts_each_vector(name):
    blob, key, plain = load(name)
    header, plaintext, trailer = independent_reader(blob, base64.b64decode(key))
    assert plaintext == plain
    if header["kind"] == "archive":
        assert trailer["rows"] == plain.count(b"\n")
