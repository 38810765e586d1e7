"""Reading the container: the whole file in order, or (version 2) only the segments asked for.

Nothing comes out that has not authenticated at its position in the file. A whole read ends with
every check FORMAT.md lists; a segment read checks the trailer first (found through the locator at
the end of the file) and then that each segment is exactly one complete zstd frame holding the bytes
and rows the trailer promised. Output produced before those last checks is unverified: callers stage
it and keep it only once the read returned without error.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import accumulate
from typing import BinaryIO

import zstandard

from strix.bytesearch import DAY_ROW, ROW_START, count_lines
from strix.crypto import frames as frames_module
from strix.crypto import header as hdr
from strix.crypto.container import CHUNK_SIZE, Segment, Trailer, is_day_label
from strix.crypto.errors import (
    ContainerError,
    CorruptCompressionError,
    TrailerMismatchError,
    TruncatedError,
)
from strix.crypto.frames import FINAL, FRAME, LOCATOR, LOCATOR_MAGIC, TAG_BYTES, FrameSource
from strix.crypto.keys import Keyring

# Compressed bytes handed to the decompressor at a time: bounds each block of plaintext it returns.
INFLATE_SLICE = 128 * 1024
# Room for one slice's plaintext in one piece (NDJSON compresses about 8:1): zstd's default of 128 KiB
# made each call join many small pieces into its result, a copy of every byte (a fifth of the time).
INFLATE_OUTPUT = 2 * 1024 * 1024


class CountingReader:
    """A source that counts the bytes read through it (a restore reports what it read)."""

    def __init__(self, source: BinaryIO):
        self._source = source
        self.bytes_read = 0

    def read(self, size: int = -1) -> bytes:
        data = self._source.read(size)
        self.bytes_read += len(data)
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._source.seek(offset, whence)

    def tell(self) -> int:
        return self._source.tell()


@dataclass
class _Frame:
    """Where a zstd frame started (data chunk, file offset of that chunk, position inside it) and
    what came out of it: its bytes, rows, and (archives) the day of its first row and how many rows
    begin with that day's timestamp."""

    chunk: int
    offset: int
    position: int
    plaintext_bytes: int = 0
    rows: int = 0
    day: bytes | None = None
    rows_in_day: int = 0
    head: bytes = b""  # the first bytes until the day is known, then the last bytes (see below)


ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class _Inflater:
    """Decompresses authenticated chunks frame by frame, noting where each zstd frame starts."""

    def __init__(self, count_rows: bool, strict_days: bool = False, require_checksums: bool = True):
        self._count_rows = count_rows
        self._strict_days = strict_days
        self._require_checksums = require_checksums
        self._decompressor = zstandard.ZstdDecompressor()
        self._open = None
        self.frames: list[_Frame] = []
        self.rows = 0  # newlines so far (archives), for callers' progress without counting again

    def feed(self, chunk: int, offset: int, data: bytes) -> Iterator[bytes]:
        view, position = memoryview(data), 0
        while position < len(view):
            if self._open is None:
                if self._require_checksums:
                    _require_checksum_flag(view[position : position + 5])
                self._open = self._decompressor.decompressobj(write_size=INFLATE_OUTPUT)
                self.frames.append(_Frame(chunk, offset, position))
            piece = view[position : position + INFLATE_SLICE]
            try:
                out = self._open.decompress(piece)
            except zstandard.ZstdError as e:
                raise CorruptCompressionError(f"the compressed stream is corrupt ({e}).") from None
            if self._open.eof:
                position += len(piece) - len(self._open.unused_data)
                self._open = None
            else:
                position += len(piece)
            if out:
                frame = self.frames[-1]
                frame.plaintext_bytes += len(out)
                if self._count_rows:
                    rows = count_lines(out)
                    frame.rows += rows
                    self.rows += rows
                if self._strict_days:
                    _count_rows_in_day(frame, out)
                yield out

    def finish(self) -> None:
        if self._open is not None:
            raise CorruptCompressionError("the compressed stream ends inside a frame.")


def _require_checksum_flag(start: memoryview) -> None:
    """A version 2 zstd frame is a standard frame with its content checksum (FORMAT.md)."""
    if len(start) < 5 or start[:4] != ZSTD_MAGIC or not start[4] & 0x04:
        raise CorruptCompressionError("a compressed frame lacks its content checksum (or is not a zstd frame).")


def _count_rows_in_day(frame: _Frame, out: bytes) -> None:
    """Count the rows of ``out`` that begin with the day of the frame's first row. The frame's last
    bytes are kept (starting as a newline, so that its first row counts), so that a row start cut
    between two outputs is still found, and found once."""
    if frame.day is None:
        frame.head += out
        if len(frame.head) < DAY_ROW:
            return
        out, frame.head = frame.head, b"\n"
        frame.day = out[len(ROW_START) : DAY_ROW] if out.startswith(ROW_START) else b"?"
    needle = b"\n" + ROW_START + frame.day
    # Row starts inside ``out``, and the one cut between the kept bytes and ``out`` (the kept bytes are
    # too few to hold a whole needle, so nothing is counted twice); ``out`` itself is never copied.
    edge = len(needle) - 1
    frame.rows_in_day += out.count(needle) + (frame.head + out[:edge]).count(needle)
    frame.head = (frame.head + out)[-edge:] if len(out) < edge else out[-edge:]


class ContainerReader:
    """Authenticated plaintext out of a container; check :attr:`trailer` only after iterating fully."""

    def __init__(self, source: BinaryIO, keyring: Keyring, read_size: int = CHUNK_SIZE, audit_rows: bool = True):
        raw = hdr.read_raw_header(source)
        self.header, keys = hdr.authenticate(raw, keyring.key_for(hdr.raw_key_id(raw)))
        self._source = source
        self._key = keys.payload_key
        self._read_size = read_size
        self._count_rows = self.header.kind == "archive"  # an archive's trailer and index count rows
        # An archive's rows are counted as they are decompressed, which audits its writer: the index's
        # counts are reached, and (version 3) every row of a day begins with that day's timestamp
        # (FORMAT.md). A reader that only needs the bytes (a search) can leave the audit to restore
        # and Verify: its rows then come from the authenticated index (seekable files only).
        self._audit_rows = self._count_rows and (audit_rows or not self.seekable)
        self._strict_days = self._audit_rows and self.header.version >= 3
        self._index: Trailer | None = None
        self.trailer: Trailer | None = None
        self._rows_before = 0  # rows of the segments already read whole
        self._inflater: _Inflater | None = None
        self._segments: list[Segment] = []  # the index's segments for the frames being read
        self._rows_ahead: list[int] = [0]  # rows of those segments before each one (running sums)

    @property
    def rows_read(self) -> int:
        """Rows returned so far (archives): counted once as they are decompressed, or without the
        audit, the index's rows of the frames read, a frame read in part in proportion to its bytes."""
        if self._inflater is None:
            return self._rows_before
        if self._audit_rows:
            return self._rows_before + self._inflater.rows
        frames = self._inflater.frames
        if not frames or len(frames) > len(self._segments):
            return self._rows_before + self._rows_ahead[min(len(frames), len(self._segments))]
        last, segment = frames[-1], self._segments[len(frames) - 1]  # the frames before it are complete
        within = min(segment.rows, segment.rows * last.plaintext_bytes // max(segment.plaintext_bytes, 1))
        return self._rows_before + self._rows_ahead[len(frames) - 1] + within

    @property
    def seekable(self) -> bool:
        """Whether single segments can be read (format version 2 and later)."""
        return self.header.version >= 2

    def __iter__(self) -> Iterator[bytes]:
        if self.header.version == 1:
            yield from self._read_version_1()
        else:
            yield from self._read_whole()

    def _by_index(self, segments) -> None:
        """Without the audit, :attr:`rows_read` counts these segments' rows from the index."""
        self._segments = list(segments)
        self._rows_ahead = list(accumulate((s.rows for s in self._segments), initial=0))

    # --- version 2 -------------------------------------------------------------------------------

    def _read_whole(self) -> Iterator[bytes]:
        if self._count_rows and not self._audit_rows:
            self._by_index(self.index().segments)
            self._source.seek(len(self.header.raw))
        frames = FrameSource(self._source, self.header, self._key)
        inflater = self._inflater = _Inflater(self._audit_rows, self._strict_days)
        while True:
            flag, index, offset, plaintext = frames.next_frame()
            if flag == FINAL:
                break
            yield from inflater.feed(index, offset, plaintext)
        inflater.finish()
        frames.read_locator(offset, index)
        trailer = _parse_trailer(plaintext)
        _check_index(trailer, index, offset, len(self.header.raw), self._count_rows, self.header.version)
        _check_frames(_expected_frames(trailer, len(self.header.raw)), inflater.frames, self._audit_rows)
        _check_days(trailer.segments, inflater.frames, self._strict_days)
        self.trailer = trailer

    def index(self) -> Trailer | None:
        """The authenticated trailer, read through the locator without reading the data (version 2;
        None for version 1, which can only be read whole). Needs a seekable source."""
        if not self.seekable:
            return None
        if self._index is None:
            end = self._source.seek(0, 2)
            data_start = len(self.header.raw)
            if end < data_start + LOCATOR.size:
                raise TruncatedError("the file ends before its locator; it was truncated.")
            self._source.seek(end - LOCATOR.size)
            final_offset, final_index, magic = LOCATOR.unpack(self._source.read(LOCATOR.size))
            smallest_final = FRAME.size + TAG_BYTES  # an empty final frame
            if (
                magic != LOCATOR_MAGIC
                or not data_start <= final_offset <= end - LOCATOR.size - smallest_final
                or final_index > frames_module.MAX_COUNTER
            ):
                raise TruncatedError("the file does not end with its locator; it was truncated or altered.")
            self._source.seek(final_offset)
            frames = FrameSource(self._source, self.header, self._key, index=final_index, offset=final_offset)
            flag, _, _, plaintext = frames.next_frame()
            if flag != FINAL:
                raise TrailerMismatchError("the locator does not point at the final chunk; the file was altered.")
            frames.read_locator(final_offset, final_index)
            trailer = _parse_trailer(plaintext)
            _check_index(trailer, final_index, final_offset, data_start, self._count_rows, self.header.version)
            self._index = trailer
        return self._index

    def read_segments(self, labels: Iterable[str]) -> Iterator[bytes]:
        """The plaintext of the named segments, in file order, reading only their chunks. Each one
        is checked complete (one zstd frame, its bytes and rows) before the next begins."""
        trailer = self.index()
        if trailer is None:
            raise ContainerError("this file is in format version 1, which can only be read whole.")
        wanted = set(labels)
        for position, segment in enumerate(trailer.segments):
            if segment.label not in wanted:
                continue
            stop = trailer.segments[position + 1].chunk if position + 1 < len(trailer.segments) else trailer.chunks
            yield from self._read_segment(segment, stop)

    def sealed_segment(self, label: str) -> Iterator[bytes]:
        """Segment ``label``'s compressed bytes (its one zstd frame), each chunk authenticated at its
        position, without decompressing them: for copying a day into another file. The caller checks
        the day first with :meth:`read_segments`, which decompresses and checks it whole."""
        trailer = self.index()
        if trailer is None:
            raise ContainerError("this file is in format version 1, which can only be read whole.")
        position = next((i for i, s in enumerate(trailer.segments) if s.label == label), None)
        if position is None:
            raise TrailerMismatchError(f"the file's index has no day {label}.")
        segment = trailer.segments[position]
        stop = trailer.segments[position + 1].chunk if position + 1 < len(trailer.segments) else trailer.chunks
        self._source.seek(segment.offset)
        frames = FrameSource(self._source, self.header, self._key, index=segment.chunk, offset=segment.offset)
        while frames.index < stop:
            flag, _, _, plaintext = frames.next_frame()
            if flag == FINAL:
                raise TrailerMismatchError(f"segment {segment.label} runs into the final chunk; the index is wrong.")
            yield plaintext

    def _read_segment(self, segment: Segment, stop: int) -> Iterator[bytes]:
        self._source.seek(segment.offset)
        frames = FrameSource(self._source, self.header, self._key, index=segment.chunk, offset=segment.offset)
        self._rows_before = self.rows_read
        self._by_index([segment])
        inflater = self._inflater = _Inflater(self._audit_rows, self._strict_days)
        while frames.index < stop:
            flag, index, offset, plaintext = frames.next_frame()
            if flag == FINAL:
                raise TrailerMismatchError(f"segment {segment.label} runs into the final chunk; the index is wrong.")
            yield from inflater.feed(index, offset, plaintext)
        inflater.finish()
        _check_frames([_frame_of(segment)], inflater.frames, self._audit_rows)
        _check_days([segment], inflater.frames, self._strict_days)

    # --- version 1 -------------------------------------------------------------------------------

    def _read_version_1(self) -> Iterator[bytes]:
        """One zstd frame over all data chunks; the trailer holds the plaintext's SHA-256."""
        chunks = _V1Chunks(FrameSource(self._source, self.header, self._key))
        sha, total, rows = hashlib.sha256(), 0, 0
        reader = zstandard.ZstdDecompressor().stream_reader(chunks, read_size=CHUNK_SIZE)
        try:
            while block := reader.read(self._read_size):
                sha.update(block)
                total += len(block)
                if self._count_rows:
                    rows += count_lines(block)
                    self._rows_before = rows
                yield block
        except zstandard.ZstdError as e:
            raise CorruptCompressionError(f"the compressed stream is corrupt ({e}).") from None
        if chunks.drain():
            raise CorruptCompressionError("data follows the end of the compressed stream.")
        try:
            document = json.loads(chunks.trailer_bytes)
            trailer = Trailer(
                plaintext_bytes=document["plaintext_bytes"],
                rows=document["rows"],
                chunks=document["chunks"],
                sha256=document["sha256"],
            )
        except (ValueError, TypeError, KeyError) as e:
            raise TrailerMismatchError(f"the trailer is unreadable ({e.__class__.__name__}).") from None
        counted_rows = rows if self._count_rows else None
        digest = sha.hexdigest()
        if (trailer.plaintext_bytes, trailer.sha256, trailer.rows) != (total, digest, counted_rows):
            raise TrailerMismatchError(
                f"the content does not match its trailer: {total} bytes / {counted_rows} rows / sha256 "
                f"{digest[:16]}… read, trailer says {trailer.plaintext_bytes} / {trailer.rows} / "
                f"{trailer.sha256[:16]}…"
            )
        self.trailer = trailer


class _V1Chunks:
    """Version 1's data chunks as one readable stream, for zstd's stream reader."""

    def __init__(self, frames: FrameSource):
        self._frames = frames
        self._pending = memoryview(b"")
        self.trailer_bytes: bytes | None = None

    def read(self, size: int = -1) -> bytes:
        while not self._pending and self.trailer_bytes is None:
            self._pending = memoryview(self._next())
        if size < 0:
            size = len(self._pending)
        out, self._pending = self._pending[:size], self._pending[size:]
        return out.tobytes()

    def drain(self) -> bytes:
        """Everything left before the final frame (should be nothing), then the trailer bytes."""
        leftover = bytearray(self._pending)
        self._pending = memoryview(b"")
        while self.trailer_bytes is None:
            leftover += self._next()
        return bytes(leftover)

    def _next(self) -> bytes:
        flag, _, _, plaintext = self._frames.next_frame()
        if flag == FINAL:
            self.trailer_bytes = plaintext
            self._frames.expect_end()
            return b""
        return plaintext


def _parse_trailer(raw: bytes) -> Trailer:
    try:
        document = json.loads(raw)
        return Trailer(
            plaintext_bytes=int(document["plaintext_bytes"]),
            rows=None if document["rows"] is None else int(document["rows"]),
            chunks=int(document["chunks"]),
            segments=tuple(Segment.from_json(s) for s in document["segments"]),
        )
    except (ValueError, TypeError, KeyError) as e:
        raise TrailerMismatchError(f"the trailer is unreadable ({e.__class__.__name__}).") from None


def _check_index(
    trailer: Trailer, final_index: int, final_offset: int, data_start: int, count_rows: bool, version: int
) -> None:
    """The trailer's own consistency: its chunk count is the final chunk's counter, and its segments
    tile the data chunks in order, their counts adding up to the totals."""
    problem = None
    segments = trailer.segments
    labels = [s.label for s in segments]
    if trailer.chunks != final_index:
        problem = f"it counts {trailer.chunks} chunks but the final chunk is number {final_index}"
    elif (trailer.rows is None) == count_rows:
        problem = "its row count does not fit the file's kind"
    elif len(segments) > frames_module.MAX_SEGMENTS:
        problem = f"it lists {len(segments)} segments, more than {frames_module.MAX_SEGMENTS}"
    elif count_rows and trailer.rows and not segments and version >= 3:
        problem = "an archive with rows has no day index"
    elif not count_rows and segments:
        problem = "a backup has no segments"
    elif count_rows and not all(is_day_label(label) for label in labels):
        bad = next(label for label in labels if not is_day_label(label))
        problem = f"a segment label is not a day (YYYY-MM-DD): {bad[:20]!r}"
    elif count_rows and not all(a < b for a, b in zip(labels, labels[1:], strict=False)):
        bad = next(b for a, b in zip(labels, labels[1:], strict=False) if not a < b)
        problem = f"its days are not in increasing order (day {bad})"
    elif segments:
        chunks = [s.chunk for s in segments]
        offsets = [s.offset for s in segments]
        if chunks[0] != 0 or offsets[0] != data_start:
            problem = "its first segment does not start at the first chunk"
        elif not (_increasing(chunks) and _increasing(offsets)):
            problem = "its segments are out of order"
        elif chunks[-1] >= trailer.chunks or offsets[-1] >= final_offset:
            problem = "a segment starts after the last data chunk"
        elif sum(s.plaintext_bytes for s in segments) != trailer.plaintext_bytes or (
            count_rows and sum(s.rows for s in segments) != trailer.rows
        ):
            problem = "its segments do not add up to its totals"
        elif len({s.label for s in segments}) != len(segments):
            problem = "two segments have the same label"
    if problem:
        raise TrailerMismatchError(f"the trailer is inconsistent: {problem}.")


def _increasing(values: list[int]) -> bool:
    return all(a < b for a, b in zip(values, values[1:], strict=False))


def _expected_frames(trailer: Trailer, data_start: int) -> list[tuple]:
    """(first chunk, its offset, position in it, bytes, rows) of each zstd frame the trailer describes:
    one per segment; a file without segments holds one frame (none when it is empty)."""
    if trailer.segments:
        return [_frame_of(s) for s in trailer.segments]
    if trailer.chunks:
        return [(0, data_start, 0, trailer.plaintext_bytes, trailer.rows)]
    return []


def _frame_of(segment: Segment) -> tuple:
    return (segment.chunk, segment.offset, 0, segment.plaintext_bytes, segment.rows)


def _check_frames(expected: list[tuple], frames: list[_Frame], count_rows: bool) -> None:
    """What was decompressed is what the trailer describes, frame by frame (and its rows, if counted)."""
    found = [(f.chunk, f.offset, f.position, f.plaintext_bytes, f.rows if count_rows else None) for f in frames]
    if not count_rows:
        expected = [(*e[:4], None) for e in expected]
    if found != expected:
        total = sum(f.plaintext_bytes for f in frames)
        rows = sum(f.rows for f in frames) if count_rows else None
        raise TrailerMismatchError(
            f"the content does not match its trailer: {len(frames)} compressed frame(s), {total} bytes and "
            f"{rows} rows read, the trailer describes {len(expected)} frame(s), "
            f"{sum(e[3] for e in expected)} bytes."
        )


def _check_days(segments, frames: list[_Frame], strict: bool) -> None:
    """An archive's day ``YYYY-MM-DD`` holds only rows whose timestamps fall on that day: each of its
    rows begins with ``{"timestamp":"YYYY-MM-DD`` (a writer's bug otherwise: only a key holder can
    make such a file, and a one-day restore would return another day's rows). Version 3 archives."""
    if not strict:
        return
    for segment, frame in zip(segments, frames, strict=False):
        if frame.rows and (frame.day != segment.label.encode() or frame.rows_in_day != frame.rows):
            outside = frame.rows - frame.rows_in_day if frame.day == segment.label.encode() else frame.rows
            raise TrailerMismatchError(
                f"day {segment.label} holds {outside} row(s) whose timestamp is not on that day; the archive "
                "was written wrongly and cannot be trusted for that day."
            )


def read_plain_header(source: BinaryIO) -> hdr.Header:
    """The header of a container without any key (for listings); not yet authenticated."""
    return hdr.read_header(source)
