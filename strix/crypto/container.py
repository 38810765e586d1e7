"""Writing the streaming encrypted container: zstd, then chunked AES-256-GCM (layout in docs/FORMAT.md).

After the header come data frames holding consecutive slices of the compressed stream, each at most
``chunk_size`` bytes, then the final frame with the trailer, then (version 2) a 16-byte locator.

Version 2 files are *seekable*: a writer may cut the plaintext into labelled **segments** (archives
use one per UTC day). Each segment is its own zstd frame starting at the first byte of a data chunk,
and the trailer lists every segment's first chunk, file offset, bytes and rows, so a reader can open
one day without reading the others. Every chunk is authenticated at its position and the trailer
commits to the chunk count, byte and row totals; each zstd frame carries its content checksum.
Memory stays at a few chunks.
"""

from __future__ import annotations

import json
import os
import queue
import threading
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from typing import BinaryIO

import zstandard

from strix.bytesearch import count_lines
from strix.crypto import frames
from strix.crypto import header as hdr
from strix.crypto.errors import ContainerError
from strix.crypto.frames import DATA, FINAL, LOCATOR, LOCATOR_MAGIC, seal
from strix.crypto.keys import Keyring

CHUNK_SIZE = 1024 * 1024
ZSTD_JOB_SIZE = 2 * 1024 * 1024


def is_day_label(label: str) -> bool:
    """``YYYY-MM-DD``, a real date: an archive's segment label."""
    if len(label) != 10 or not label.isascii():
        return False
    try:
        return date.fromisoformat(label).isoformat() == label
    except ValueError:
        return False


@dataclass(frozen=True)
class Segment:
    """A labelled part of the plaintext: one zstd frame, from data chunk ``chunk`` at file ``offset``."""

    label: str
    chunk: int
    offset: int
    plaintext_bytes: int
    rows: int | None

    @classmethod
    def from_json(cls, value: dict) -> Segment:
        return cls(
            label=str(value["label"]),
            chunk=int(value["chunk"]),
            offset=int(value["offset"]),
            plaintext_bytes=int(value["plaintext_bytes"]),
            rows=None if value["rows"] is None else int(value["rows"]),
        )


@dataclass(frozen=True)
class Trailer:
    plaintext_bytes: int
    rows: int | None
    chunks: int
    sha256: str | None = None  # version 1 only: version 2 relies on the chunk tags and zstd checksums
    segments: tuple[Segment, ...] = field(default_factory=tuple)

    def to_json(self) -> bytes:
        document = {"chunks": self.chunks, "plaintext_bytes": self.plaintext_bytes, "rows": self.rows}
        document["segments"] = [asdict(s) for s in self.segments]
        return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()

    def segment(self, label: str) -> Segment | None:
        return next((s for s in self.segments if s.label == label), None)


class _HeldSegment(list):
    """Compressed pieces of a copied segment for the writer's thread to seal as they are; ``in_flight``:
    the caller waits for the previous such list to be sealed before it hands over the next."""

    def __init__(self, pieces, in_flight: bool = True):
        super().__init__(pieces)
        self.in_flight = in_flight


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
        if not hdr.MIN_CHUNK_SIZE <= chunk_size <= hdr.MAX_CHUNK_SIZE:
            raise ValueError(f"chunk_size must be {hdr.MIN_CHUNK_SIZE} to {hdr.MAX_CHUNK_SIZE} bytes, not {chunk_size}")
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
        self._sink.write(raw)
        self._offset = len(raw)
        self._chunk_size = chunk_size
        # 2 MiB jobs: measured here, zstd's default job size for level 3 used twice the memory and was slower.
        params = zstandard.ZstdCompressionParameters.from_level(
            level, threads=threads, job_size=ZSTD_JOB_SIZE, write_checksum=True
        )
        self._compressor = zstandard.ZstdCompressor(compression_params=params)
        self._bytes = 0
        self._rows = 0
        self._index = 0
        # Caller's side: the open segment's label and its counts when it began.
        self._labels: list[str] = []
        self._segment_counts: list[tuple[int, int]] = []  # (bytes, rows) at each segment's start
        self._unsegmented = False
        # Compressing thread's side: (label, first chunk, offset) of each segment it started.
        self._starts: list[tuple[str, int, int]] = []
        self.trailer: Trailer | None = None
        # Row counting stays on the caller's thread while compression and sealing run on another:
        # both release the GIL, so the two overlap on two cores. The queue bounds memory: an archive
        # hands over two buffers a block (the line the block before cut, then the block's own lines).
        # Measured: 1, 8 or 16 MiB waiting here made no difference to an archive's time.
        self._queue: queue.Queue = queue.Queue(maxsize=8)
        self._held_in_flight = threading.Semaphore(1)
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._compress_and_seal, name="container-writer", daemon=True)
        self._thread.start()

    @property
    def rows_written(self) -> int:
        """Rows (newlines) written so far; archives only."""
        return self._rows

    def begin_segment(self, label: str) -> None:
        """What is written from now on belongs to segment ``label`` (a UTC day, for archives).

        A segment no byte is written to is left out of the index. Either every byte belongs to a
        segment or none does.
        """
        if self._unsegmented:
            raise ValueError("segments must begin before anything is written")
        if label in self._labels:
            raise ValueError(f"segment {label!r} was already written")
        if self._count_rows and not (is_day_label(label) and (not self._labels or label > self._labels[-1])):
            raise ValueError(f"an archive's segments are UTC days in increasing order (YYYY-MM-DD), not {label!r}")
        if len(self._labels) >= frames.MAX_SEGMENTS:
            raise ContainerError(f"a file holds at most {frames.MAX_SEGMENTS} segments (days).")
        self._labels.append(label)
        self._segment_counts.append((self._bytes, self._rows))
        self._queue.put(("segment", label))

    def copy_segment(self, label: str, compressed: Iterable[bytes], plaintext_bytes: int, rows: int) -> None:
        """Add segment ``label`` whose bytes are already one complete zstd frame (a day of another
        archive, read and authenticated there): re-sealed under this file's keys, never recompressed.

        ``plaintext_bytes`` and ``rows`` are what the frame decompresses to, as that file's
        authenticated index says; the caller checks the frame against them before copying it."""
        self.begin_segment(label)
        self._bytes += plaintext_bytes
        if self._count_rows:
            self._rows += rows
        if isinstance(compressed, list):
            # Already in memory: handed over whole, so that the caller reads the next day while this
            # one is sealed; one such list at a time is in flight, which bounds the memory.
            while not self._held_in_flight.acquire(timeout=0.1):
                self._raise_failure()
            self._queue.put(_HeldSegment(compressed))
            return
        for piece in compressed:
            self._raise_failure()
            if piece:
                self._queue.put(_HeldSegment([piece], in_flight=False))

    def write(self, data: bytes | memoryview) -> int:
        if self.trailer is not None:
            raise ValueError("the container is already closed")
        self._raise_failure()
        if not data:
            return 0
        if not self._labels:
            self._unsegmented = True
        if not (type(data) is bytes or (type(data) is memoryview and type(data.obj) is bytes)):
            data = bytes(data)  # compressed later, on another thread: only what cannot change is kept as it is
        self._bytes += len(data)
        if self._count_rows:
            self._rows += count_lines(data)
        self._queue.put(data)
        return len(data)

    def close(self) -> Trailer:
        if self.trailer is not None:
            return self.trailer
        self._queue.put(None)
        self._thread.join()
        self._raise_failure()
        if self._count_rows and self._rows and not self._labels:
            raise ContainerError("an archive with rows needs its day index: begin a segment for each day.")
        trailer = Trailer(
            plaintext_bytes=self._bytes,
            rows=self._rows if self._count_rows else None,
            chunks=self._index,
            segments=self._segments(),
        )
        final_offset = self._offset
        self._write_frame(trailer.to_json(), FINAL)
        self._sink.write(LOCATOR.pack(final_offset, trailer.chunks, LOCATOR_MAGIC))
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

    def _segments(self) -> tuple[Segment, ...]:
        """Segments that received bytes, with the counts the caller's side kept for each."""
        if not self._labels:
            return ()
        ends = self._segment_counts[1:] + [(self._bytes, self._rows)]
        counts = {
            label: (end[0] - start[0], end[1] - start[1])
            for label, start, end in zip(self._labels, self._segment_counts, ends, strict=True)
        }
        return tuple(
            Segment(label, chunk, offset, counts[label][0], counts[label][1] if self._count_rows else None)
            for label, chunk, offset in self._starts
        )

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    def _compress_and_seal(self) -> None:
        ended = False  # the caller's end-of-input was taken from the queue
        try:
            chunker, label, started = None, None, False
            while (item := self._queue.get()) is not None:
                if self._failure is not None:
                    continue
                if isinstance(item, tuple):  # a new segment: its bytes start a new zstd frame, later
                    chunker = self._finish_frame(chunker)
                    label, started = item[1], False
                    continue
                if not started:
                    started = True
                    if label is not None:
                        self._starts.append((label, self._index, self._offset))
                if isinstance(item, _HeldSegment):  # a copied frame: sealed as it is, in chunk-size pieces
                    for piece in item:
                        view = memoryview(piece)
                        for start in range(0, len(view), self._chunk_size):
                            self._write_frame(view[start : start + self._chunk_size], DATA)
                    if item.in_flight:
                        self._held_in_flight.release()
                    continue
                if chunker is None:
                    chunker = self._compressor.chunker(chunk_size=self._chunk_size)
                for chunk in chunker.compress(item):
                    self._write_frame(chunk, DATA)
            ended = True
            if self._failure is None:
                self._finish_frame(chunker)
        except BaseException as e:  # re-raised on the caller's thread at the next write or close
            self._failure = e
            while not ended and self._queue.get() is not None:  # keep draining so the caller never blocks
                pass

    def _finish_frame(self, chunker) -> None:
        """End the open zstd frame; its last, shorter chunk ends a data frame, so the next segment
        starts on a frame boundary."""
        if chunker is not None:
            for chunk in chunker.finish():
                self._write_frame(chunk, DATA)
        return None

    def _write_frame(self, plaintext: bytes, flag: int) -> None:
        # The counter is in the nonce: past the cap it would repeat one (docs/FORMAT.md, Limits).
        if self._index > frames.MAX_COUNTER or (flag == DATA and self._index == frames.MAX_COUNTER):
            raise ContainerError(
                f"the file would need more than {frames.MAX_COUNTER} data frames; write it with a larger chunk size."
            )
        frame = seal(self._key, self.header, self._index, flag, plaintext)
        self._sink.write(frame)
        self._offset += len(frame)
        self._index += 1
