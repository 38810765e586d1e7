"""The committed vectors, read by our reader and by an independent reader written from docs/FORMAT.md
with other libraries (``cryptography`` for AES-GCM, the standard library for HKDF/HMAC)."""

import base64
import hashlib
import hmac
import io
import json
import re
import struct
from datetime import date
from pathlib import Path

import pytest
import zstandard
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from strix.crypto.errors import ContainerError
from strix.crypto.keys import Keyring
from strix.crypto.reader import ContainerReader

VECTORS = Path(__file__).parent / "vectors"
NAMES = sorted(p.stem for p in VECTORS.glob("*.strix") if not p.stem.startswith("refused-"))
REFUSED = sorted(p.stem for p in VECTORS.glob("refused-*.strix"))
MAX_COUNTER = 2**32 - 1


class Refused(Exception):
    """The file breaks a rule of docs/FORMAT.md."""


def require(condition, rule: str) -> None:
    if not condition:
        raise Refused(rule)


def depth_of(text: bytes) -> int:
    """The deepest nesting of brackets outside JSON strings (FORMAT.md: Header JSON)."""
    depth = deepest = 0
    for token in re.finditer(rb'"(?:[^"\\]|\\.)*"|[\[{]|[\]}]', text):
        if token.group() in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        elif token.group() in (b"]", b"}"):
            depth -= 1
    return deepest


def hkdf_sha256(ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    okm, block = b"", b""
    for counter in range(1, -(-length // 32) + 1):
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        okm += block
    return okm[:length]


def open_header(blob: bytes, master: bytes) -> tuple[int, dict, bytes, bytes, bytes, int]:
    """Version, header JSON, payload key, nonce prefix, AAD and where the frames start: the MAC is
    checked over the raw bytes before the JSON is parsed (FORMAT.md: Reading, steps 1-5)."""
    require(blob[:8] == b"STRIXDP\n", "magic")
    version, length = struct.unpack(">HI", blob[8:14])
    require(version in (1, 2, 3) and length <= 65_536, "version and header length")
    raw = blob[14 : 14 + length]
    mac = blob[14 + length : 14 + length + 32]
    (salt,) = re.findall(rb'"salt":"([A-Za-z0-9+/]{43}=)"', raw) or [None]
    require(salt and len(re.findall(rb'"key_id":"([0-9a-f]{16})"', raw)) == 1, "one key id and one salt")
    okm = hkdf_sha256(master, base64.b64decode(salt), b"strix-container v1", 64)
    header_key, payload_key = okm[:32], okm[32:]
    require(hmac.compare_digest(mac, hmac.new(header_key, blob[: 14 + length], hashlib.sha256).digest()), "MAC")
    require(depth_of(raw) <= 4, "header nesting")
    header = json.loads(raw)
    require(base64.b64decode(header["salt"]) == base64.b64decode(salt), "the salt parsed is the salt found")
    require(512 <= header["chunk_size"] <= 16 * 1024 * 1024, "chunk size")
    aad = hashlib.sha256(blob[: 14 + length + 32]).digest()
    return version, header, payload_key, base64.b64decode(header["nonce_prefix"]), aad, 14 + length + 32


def open_frame(blob, offset, index, key, prefix, aad, chunk_size=16 << 20) -> tuple[int, bytes, int]:
    """(flag, plaintext, offset of the next frame) of the frame at ``offset`` with counter ``index``."""
    flag, size = struct.unpack(">BI", blob[offset : offset + 5])
    require(index <= MAX_COUNTER, "counter cap")
    require(flag in (0, 1) and 16 <= size <= (chunk_size if flag == 0 else 1 << 20) + 16, "frame length")
    nonce = prefix + struct.pack(">IB", index, flag)
    return flag, AESGCM(key).decrypt(nonce, blob[offset + 5 : offset + 5 + size], aad), offset + 5 + size


def independent_reader(blob: bytes, master: bytes) -> tuple[dict, bytes, dict]:
    """Straight from docs/FORMAT.md; shares no code with strix.crypto."""
    version, header, key, prefix, aad, offset = open_header(blob, master)
    index, chunks, trailer = 0, [], None
    while trailer is None:
        flag, plain, next_offset = open_frame(blob, offset, index, key, prefix, aad, header["chunk_size"])
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
        check_index(header, trailer, version)
        segments = trailer["segments"] or [{"chunk": 0, "rows": trailer["rows"]}] * bool(chunks)
        plaintext = b""
        for k, segment in enumerate(segments):
            stop = segments[k + 1]["chunk"] if k + 1 < len(segments) else len(chunks)
            if "offset" in segment:
                assert chunks[segment["chunk"]][0] == segment["offset"]
            compressed = b"".join(c for _, c in chunks[segment["chunk"] : stop])
            day = inflate_one_frame(compressed)
            if "plaintext_bytes" in segment:
                assert len(day) == segment["plaintext_bytes"] and day.count(b"\n") == segment["rows"]
                if version >= 3:
                    check_day(segment["label"], day)
            plaintext += day
    assert len(plaintext) == trailer["plaintext_bytes"]
    return header, plaintext, trailer


def inflate_one_frame(compressed: bytes) -> bytes:
    """One standard zstd frame with its content checksum (Frame_Header_Descriptor bit 2), nothing after."""
    require(compressed[:4] == b"\x28\xb5\x2f\xfd" and compressed[4] & 0x04, "zstd frame with its checksum")
    decoder = zstandard.ZstdDecompressor().decompressobj()
    day = decoder.decompress(compressed)
    assert decoder.eof and not decoder.unused_data, "one zstd frame per segment, ending with it"
    return day


def check_index(header: dict, trailer: dict, version: int) -> None:
    """FORMAT.md: the trailer's own rules (labels are days in increasing order; version 3: an index
    when there are rows)."""
    segments = trailer["segments"]
    require(len(segments) <= 10_000, "segments cap")
    if header["kind"] == "archive":
        require(segments or not trailer["rows"] or version < 3, "an archive with rows has its day index")
        labels = [s["label"] for s in segments]
        require(all(date.fromisoformat(label).isoformat() == label for label in labels), "labels are days")
        require(labels == sorted(set(labels)), "days increase")
    else:
        require(not segments, "a backup has no segments")


def check_day(label: str, day: bytes) -> None:
    """Every row of day ``label`` begins with ``{"timestamp":"<label>``."""
    require(all(line.startswith(b'{"timestamp":"' + label.encode()) for line in day.splitlines()), "rows in day")


def independent_day_reader(blob: bytes, master: bytes, label: str) -> bytes:
    """One day of a version 2 archive, reading only the locator, the trailer and that day's chunks."""
    version, header, key, prefix, aad, _ = open_header(blob, master)
    final_offset, final_index, magic = struct.unpack(">QI4s", blob[-16:])
    assert magic == b"SXDP"
    require(final_index <= MAX_COUNTER and final_offset <= len(blob) - 16 - 21, "locator bounds")
    flag, plain, _ = open_frame(blob, final_offset, final_index, key, prefix, aad)
    trailer = json.loads(plain)
    assert flag == 1 and trailer["chunks"] == final_index
    check_index(header, trailer, version)
    segments = trailer["segments"]
    k = next(k for k, s in enumerate(segments) if s["label"] == label)
    stop = segments[k + 1]["chunk"] if k + 1 < len(segments) else trailer["chunks"]
    offset, compressed = segments[k]["offset"], b""
    for index in range(segments[k]["chunk"], stop):
        flag, chunk, offset = open_frame(blob, offset, index, key, prefix, aad, header["chunk_size"])
        assert flag == 0
        compressed += chunk
    day = inflate_one_frame(compressed)
    assert len(day) == segments[k]["plaintext_bytes"] and day.count(b"\n") == segments[k]["rows"]
    if version >= 3:
        check_day(label, day)
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
    for version in (1, 2, 3):
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


@pytest.mark.parametrize("name", ["archive-days-v2", "archive-days-v3"])
def test_a_reader_written_from_the_spec_reads_one_day_alone(name):
    blob, key, plain = load(name)
    days = {}
    for line in plain.splitlines(keepends=True):
        days.setdefault(json.loads(line)["timestamp"][:10], []).append(line)
    for label, lines in days.items():
        assert independent_day_reader(blob, base64.b64decode(key), label) == b"".join(lines)
    reader = ContainerReader(io.BytesIO(blob), Keyring.from_values(key))
    assert b"".join(reader.read_segments(["2026-11-03"])) == b"".join(days["2026-11-03"])


@pytest.mark.parametrize("name", REFUSED)
def test_every_negative_vector_is_refused_by_the_reader_written_from_the_spec_and_by_ours(name):
    blob = (VECTORS / f"{name}.strix").read_bytes()
    key = (VECTORS / f"{name}.key").read_text().strip()
    with pytest.raises(Refused):
        independent_reader(blob, base64.b64decode(key))
    with pytest.raises(ContainerError):
        b"".join(ContainerReader(io.BytesIO(blob), Keyring.from_values(key)))


def test_the_negative_vectors_are_the_ones_the_spec_names():
    spec = (Path(__file__).parent.parent / "docs" / "FORMAT.md").read_text()
    assert REFUSED == [
        "refused-day-label-v3",
        "refused-nesting-v3",
        "refused-no-checksum-v3",
        "refused-oversize-frame-v3",
    ]
    assert all(f"`{name}`" in spec for name in REFUSED)


@pytest.mark.parametrize("command", ["verify", "decrypt"])
@pytest.mark.parametrize("name", REFUSED)
def test_the_cli_refuses_every_negative_vector_in_one_line_without_a_traceback(name, command, tmp_path):
    """`manage.py archives verify|decrypt` as an operator runs it, holding the vector's key."""
    import os
    import subprocess
    import sys

    root = Path(__file__).parent.parent
    key = (VECTORS / f"{name}.key").read_text().strip()
    out = tmp_path / "out.ndjson"
    arguments = ["--file", str(VECTORS / f"{name}.strix")] + (["-o", str(out)] if command == "decrypt" else [])
    result = subprocess.run(
        [sys.executable, "manage.py", "archives", command, *arguments],
        cwd=root, capture_output=True, text=True, timeout=120,
        env={**os.environ, "STRIX_BACKUP_DECRYPTION_KEYS": key},
    )  # fmt: skip
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not out.exists()
