"""Streaming encrypted container: zstd, then chunked AES-256-GCM (STREAM construction).

After the header (see header.py) come frames ``flag u8 | length u32 BE | ciphertext ‖ tag(16)``.
Data frames (flag 0) carry consecutive slices of the zstd stream, each at most ``chunk_size``
bytes; the final frame (flag 1) carries the trailer JSON. Chunk ``i`` is sealed with
nonce = nonce_prefix(7) ‖ i (u32 BE) ‖ flag(1) and AAD = SHA-256(header), so reordering,
truncation, splicing and header edits all fail authentication. Memory stays at a few chunks.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import BinaryIO

import zstandard
from Crypto.Cipher import AES

from strix.crypto import header as hdr
from strix.crypto.errors import (
    ChunkAuthenticationError,
    ChunkOrderError,
    CorruptCompressionError,
    LastChunkFlagError,
    TrailerMismatchError,
    TrailingDataError,
    TruncatedError,
)
from strix.crypto.keys import Keyring

CHUNK_SIZE = 1024 * 1024
ZSTD_JOB_SIZE = 2 * 1024 * 1024
TAG_BYTES = 16
FRAME = struct.Struct(">BI")
DATA, FINAL = 0, 1
MAX_TRAILER = 4096
# How far from its position a failed chunk is looked for, to tell reordering from tampering.
REORDER_SEARCH = 64


@dataclass(frozen=True)
class Trailer:
    plaintext_bytes: int
    sha256: str
    rows: int | None
    chunks: int

    def to_json(self) -> bytes:
        return json.dumps(self.__dict__, sort_keys=True, separators=(",", ":")).encode()


def _nonce(prefix: bytes, index: int, flag: int) -> bytes:
    return prefix + struct.pack(">IB", index, flag)


class ContainerWriter:
    """Write plaintext in, an encrypted container out to ``sink`` (any object with ``write``)."""

    def __init__(
        self,
        sink: BinaryIO,
        keyring: Keyring,
        kind: str,
        metadata: dict | None = None,
        *,
        app_version: str = "",
        chunk_size: int = CHUNK_SIZE,
        level: int = 3,
        threads: int = 2,
    ):
        key_id = keyring.current_id  # raises KeyConfigError, naming the variable, when no key is set
        master = keyring.current
        self._sink = sink
        self._count_rows = kind == "archive"
        salt = os.urandom(hdr.SALT_BYTES)
        header = hdr.Header(
            kind=kind,
            key_id=key_id,
            salt=salt,
            nonce_prefix=os.urandom(hdr.NONCE_PREFIX_BYTES),
            chunk_size=chunk_size,
            created=datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            app_version=app_version,
            metadata=metadata or {},
        )
        keys = hdr.derive_file_keys(master, salt)
        raw = hdr.encode_header(header, keys)
        self.header = hdr.Header(**{**header.__dict__, "raw": raw})
        self._key = keys.payload_key
        self._aad = self.header.digest
        self._sink.write(raw)
        # 2 MiB jobs: measured here, zstd's default job size for level 3 used twice the memory and was slower.
        params = zstandard.ZstdCompressionParameters.from_level(level, threads=threads, job_size=ZSTD_JOB_SIZE)
        self._chunker = zstandard.ZstdCompressor(compression_params=params).chunker(chunk_size=chunk_size)
        self._sha = hashlib.sha256()
        self._bytes = 0
        self._rows = 0
        self._index = 0
        self.trailer: Trailer | None = None
        # Hashing and row counting stay on the caller's thread while compression and sealing run on
        # another: both release the GIL, so the two overlap on two cores. The queue bounds memory.
        self._queue: queue.Queue = queue.Queue(maxsize=4)
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._compress_and_seal, name="container-writer", daemon=True)
        self._thread.start()

    @property
    def rows_written(self) -> int:
        """Rows (newlines) written so far; archives only."""
        return self._rows

    def write(self, data: bytes) -> int:
        if self.trailer is not None:
            raise ValueError("the container is already closed")
        self._raise_failure()
        if not data:
            return 0
        data = bytes(data)
        self._sha.update(data)
        self._bytes += len(data)
        if self._count_rows:
            self._rows += data.count(b"\n")
        self._queue.put(data)
        return len(data)

    def close(self) -> Trailer:
        if self.trailer is not None:
            return self.trailer
        self._queue.put(None)
        self._thread.join()
        self._raise_failure()
        trailer = Trailer(
            plaintext_bytes=self._bytes,
            sha256=self._sha.hexdigest(),
            rows=self._rows if self._count_rows else None,
            chunks=self._index,
        )
        self._seal(trailer.to_json(), FINAL)
        self.trailer = trailer
        return trailer

    def abort(self) -> None:
        """Stop the background thread without a trailer; what was written is to be discarded."""
        if self._failure is None:
            self._failure = RuntimeError("the container was aborted")
        while self._thread.is_alive():
            try:
                self._queue.put(None, timeout=0.05)
            except queue.Full:
                pass
            self._thread.join(timeout=0.05)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    def _compress_and_seal(self) -> None:
        try:
            while (data := self._queue.get()) is not None:
                if self._failure is None:
                    for chunk in self._chunker.compress(data):
                        self._seal(chunk, DATA)
            if self._failure is None:
                for chunk in self._chunker.finish():
                    self._seal(chunk, DATA)
        except BaseException as e:  # re-raised on the caller's thread at the next write or close
            self._failure = e
            while self._queue.get() is not None:  # keep draining so the caller never blocks
                pass

    def _seal(self, plaintext: bytes, flag: int) -> None:
        cipher = AES.new(self._key, AES.MODE_GCM, nonce=_nonce(self.header.nonce_prefix, self._index, flag))
        cipher.update(self._aad)
        ciphertext, tag = cipher.encrypt_and_digest(plaintext)
        self._sink.write(FRAME.pack(flag, len(ciphertext) + TAG_BYTES))
        self._sink.write(ciphertext)
        self._sink.write(tag)
        self._index += 1


class _ChunkSource:
    """Authenticated zstd bytes from the frames, as a readable stream for the decompressor."""

    def __init__(self, source: BinaryIO, header: hdr.Header, key: bytes):
        self._source = source
        self._header = header
        self._key = key
        self._aad = header.digest
        self._index = 0
        self._pending = memoryview(b"")
        self.trailer_bytes: bytes | None = None
        self._max_frame = max(header.chunk_size, MAX_TRAILER) + TAG_BYTES

    def read(self, size: int = -1) -> bytes:
        while not self._pending and self.trailer_bytes is None:
            self._pending = memoryview(self._next_frame())
        if size < 0:
            size = len(self._pending)
        out, self._pending = self._pending[:size], self._pending[size:]
        return out.tobytes()

    def drain(self) -> bytes:
        """Everything left before the final frame (should be nothing), then the trailer bytes."""
        leftover = bytearray(self._pending)
        self._pending = memoryview(b"")
        while self.trailer_bytes is None:
            leftover += self._next_frame()
        return bytes(leftover)

    def _next_frame(self) -> bytes:
        prefix = self._source.read(FRAME.size)
        if len(prefix) < FRAME.size:
            raise TruncatedError(
                f"the file ends after chunk {self._index - 1} without its final chunk; it was truncated."
                if not prefix
                else f"the file ends inside the frame of chunk {self._index}; it was truncated."
            )
        flag, length = FRAME.unpack(prefix)
        if flag not in (DATA, FINAL) or not TAG_BYTES <= length <= self._max_frame:
            raise ChunkAuthenticationError(self._index, "its frame is malformed")
        body = self._source.read(length)
        if len(body) < length:
            raise TruncatedError(f"the file ends inside chunk {self._index}; it was truncated.")
        plaintext = self._open(body, self._index, flag)
        self._index += 1
        if flag == FINAL:
            self.trailer_bytes = plaintext
            if self._source.read(1):
                raise TrailingDataError("bytes follow the final chunk; data was appended to the file.")
            return b""
        return plaintext

    def _decrypt(self, body: bytes, index: int, flag: int) -> bytes | None:
        cipher = AES.new(self._key, AES.MODE_GCM, nonce=_nonce(self._header.nonce_prefix, index, flag))
        cipher.update(self._aad)
        try:
            return cipher.decrypt_and_verify(body[:-TAG_BYTES], body[-TAG_BYTES:])
        except ValueError:
            return None

    def _open(self, body: bytes, index: int, flag: int) -> bytes:
        plaintext = self._decrypt(body, index, flag)
        if plaintext is not None:
            return plaintext
        # Failure path only: say what happened, as precisely as the file allows.
        if self._decrypt(body, index, 1 - flag) is not None:
            raise LastChunkFlagError(index)
        for other in range(max(0, index - REORDER_SEARCH), index + REORDER_SEARCH):
            if other != index and self._decrypt(body, other, flag) is not None:
                raise ChunkOrderError(index, other)
        raise ChunkAuthenticationError(index)


class ContainerReader:
    """Authenticated plaintext out of a container; check :attr:`trailer` only after iterating fully."""

    def __init__(self, source: BinaryIO, keyring: Keyring, read_size: int = CHUNK_SIZE):
        self.header = hdr.read_header(source)
        keys = hdr.derive_file_keys(keyring.key_for(self.header.key_id), self.header.salt)
        hdr.verify_header(self.header, keys)
        self._chunks = _ChunkSource(source, self.header, keys.payload_key)
        self._read_size = read_size
        self.trailer: Trailer | None = None

    def __iter__(self) -> Iterator[bytes]:
        sha, total, rows = hashlib.sha256(), 0, 0
        count_rows = self.header.kind == "archive"
        reader = zstandard.ZstdDecompressor().stream_reader(self._chunks, read_size=CHUNK_SIZE)
        try:
            while block := reader.read(self._read_size):
                sha.update(block)
                total += len(block)
                if count_rows:
                    rows += block.count(b"\n")
                yield block
        except zstandard.ZstdError as e:
            raise CorruptCompressionError(f"the compressed stream is corrupt ({e}).") from None
        if self._chunks.drain():
            raise CorruptCompressionError("data follows the end of the compressed stream.")
        self.trailer = self._check_trailer(self._chunks.trailer_bytes, total, sha.hexdigest(), rows)

    def _check_trailer(self, raw: bytes, total: int, digest: str, rows: int) -> Trailer:
        try:
            trailer = Trailer(**json.loads(raw))
        except (ValueError, TypeError) as e:
            raise TrailerMismatchError(f"the trailer is unreadable ({e.__class__.__name__}).") from None
        counted_rows = rows if self.header.kind == "archive" else None
        if (trailer.plaintext_bytes, trailer.sha256, trailer.rows) != (total, digest, counted_rows):
            raise TrailerMismatchError(
                f"the content does not match its trailer: {total} bytes / {counted_rows} rows / sha256 "
                f"{digest[:16]}… read, trailer says {trailer.plaintext_bytes} / {trailer.rows} / "
                f"{trailer.sha256[:16]}…"
            )
        return trailer


def read_plain_header(source: BinaryIO) -> hdr.Header:
    """The header of a container without any key (for listings); not yet authenticated."""
    return hdr.read_header(source)
