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

from strix.crypto.keys import Keyring
from strix.crypto.reader import ContainerReader

VECTORS = Path(__file__).parent / "vectors"
NAMES = sorted(p.stem for p in VECTORS.glob("*.strix"))


def hkdf_sha256(ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    okm, block = b"", b""
    for counter in range(1, -(-length // 32) + 1):
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        okm += block
    return okm[:length]


def open_header(blob: bytes, master: bytes) -> tuple[int, dict, bytes, bytes, bytes, int]:
    """Version, header JSON, payload key, nonce prefix, AAD and where the frames start."""
    assert blob[:8] == b"STRIXDP\n"
    version, length = struct.unpack(">HI", blob[8:14])
    assert version in (1, 2)
    header_json = blob[14 : 14 + length]
    mac = blob[14 + length : 14 + length + 32]
    header = json.loads(header_json)
    okm = hkdf_sha256(master, base64.b64decode(header["salt"]), b"strix-container v1", 64)
    header_key, payload_key = okm[:32], okm[32:]
    assert hmac.compare_digest(mac, hmac.new(header_key, blob[: 14 + length], hashlib.sha256).digest())
    aad = hashlib.sha256(blob[: 14 + length + 32]).digest()
    return version, header, payload_key, base64.b64decode(header["nonce_prefix"]), aad, 14 + length + 32


def open_frame(blob, offset, index, key, prefix, aad) -> tuple[int, bytes, int]:
    """(flag, plaintext, offset of the next frame) of the frame at ``offset`` with counter ``index``."""
    flag, size = struct.unpack(">BI", blob[offset : offset + 5])
    nonce = prefix + struct.pack(">IB", index, flag)
    return flag, AESGCM(key).decrypt(nonce, blob[offset + 5 : offset + 5 + size], aad), offset + 5 + size


def independent_reader(blob: bytes, master: bytes) -> tuple[dict, bytes, dict]:
    """Straight from docs/FORMAT.md; shares no code with strix.crypto."""
    version, header, key, prefix, aad, offset = open_header(blob, master)
    index, chunks, trailer = 0, [], None
    while trailer is None:
        flag, plain, next_offset = open_frame(blob, offset, index, key, prefix, aad)
        if flag == 1:
            trailer, final_offset = json.loads(plain), offset
        else:
            chunks.append((offset, plain))
        offset, index = next_offset, index + 1
    if version == 1:
        assert offset == len(blob), "no bytes may follow the final chunk"
        plaintext = zstandard.ZstdDecompressor().decompressobj().decompress(b"".join(c for _, c in chunks))
        assert hashlib.sha256(plaintext).hexdigest() == trailer["sha256"]
    else:
        assert blob[offset:] == struct.pack(">QI", final_offset, index - 1) + b"SXDP"
        assert trailer["chunks"] == index - 1 == len(chunks)
        segments = trailer["segments"] or [{"chunk": 0, "rows": trailer["rows"]}] * bool(chunks)
        plaintext = b""
        for k, segment in enumerate(segments):
            stop = segments[k + 1]["chunk"] if k + 1 < len(segments) else len(chunks)
            if "offset" in segment:
                assert chunks[segment["chunk"]][0] == segment["offset"]
            compressed = b"".join(c for _, c in chunks[segment["chunk"] : stop])
            decoder = zstandard.ZstdDecompressor().decompressobj()
            day = decoder.decompress(compressed)
            assert decoder.eof and not decoder.unused_data, "one zstd frame per segment, ending with it"
            if "plaintext_bytes" in segment:
                assert len(day) == segment["plaintext_bytes"] and day.count(b"\n") == segment["rows"]
            plaintext += day
    assert len(plaintext) == trailer["plaintext_bytes"]
    return header, plaintext, trailer


def independent_day_reader(blob: bytes, master: bytes, label: str) -> bytes:
    """One day of a version 2 archive, reading only the locator, the trailer and that day's chunks."""
    _, _, key, prefix, aad, _ = open_header(blob, master)
    final_offset, final_index, magic = struct.unpack(">QI4s", blob[-16:])
    assert magic == b"SXDP"
    flag, plain, _ = open_frame(blob, final_offset, final_index, key, prefix, aad)
    trailer = json.loads(plain)
    assert flag == 1 and trailer["chunks"] == final_index
    segments = trailer["segments"]
    k = next(k for k, s in enumerate(segments) if s["label"] == label)
    stop = segments[k + 1]["chunk"] if k + 1 < len(segments) else trailer["chunks"]
    offset, compressed = segments[k]["offset"], b""
    for index in range(segments[k]["chunk"], stop):
        flag, chunk, offset = open_frame(blob, offset, index, key, prefix, aad)
        assert flag == 0
        compressed += chunk
    decoder = zstandard.ZstdDecompressor().decompressobj()
    day = decoder.decompress(compressed)
    assert decoder.eof and not decoder.unused_data and len(day) == segments[k]["plaintext_bytes"]
    return day


def load(name):
    key_text = (VECTORS / f"{name}.key").read_text().strip()
    return (VECTORS / f"{name}.strix").read_bytes(), key_text, (VECTORS / f"{name}.plain").read_bytes()


def test_vectors_cover_both_versions_an_archive_a_backup_several_chunks_and_days():
    read = {}
    for name in NAMES:
        blob, key, _ = load(name)
        version = struct.unpack(">H", blob[8:10])[0]
        header, _, trailer = independent_reader(blob, base64.b64decode(key))
        read[name] = (version, header["kind"], trailer["chunks"], len(trailer.get("segments") or []))
    for version in (1, 2):
        assert {kind for v, kind, _, _ in read.values() if v == version} == {"archive", "backup"}
        assert max(chunks for v, _, chunks, _ in read.values() if v == version) > 3
    assert max(days for _, _, _, days in read.values()) > 3


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


def test_a_reader_written_from_the_spec_reads_one_day_alone():
    blob, key, plain = load("archive-days-v2")
    days = {}
    for line in plain.splitlines(keepends=True):
        days.setdefault(json.loads(line)["timestamp"][:10], []).append(line)
    for label, lines in days.items():
        assert independent_day_reader(blob, base64.b64decode(key), label) == b"".join(lines)
    reader = ContainerReader(io.BytesIO(blob), Keyring.from_values(key))
    assert b"".join(reader.read_segments(["2026-11-03"])) == b"".join(days["2026-11-03"])
