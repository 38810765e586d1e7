"""Searching an archive without restoring it: the stored file is authenticated and read as it streams,
and the records that match a time range and filters come out as NDJSON, in flat memory."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from archives.models import Archive
from archives.services.options import RestoreOptions
from archives.services.stored_file import ArchiveReading, open_archive


def search_archive(
    archive: Archive, options: RestoreOptions, limit: int | None = None, on_progress: Callable[[int], None] = None
) -> Iterator[bytes]:
    """Yield the matching NDJSON lines (each ending with a newline), at most ``limit`` of them.

    Only the days the time range touches are read when the archive is indexed by day. Read to its
    end, the file is checked against its record as a restore would; a search stopped by ``limit``
    has authenticated every chunk it read.
    """
    with open_archive(archive) as stored:
        yield from search_reading(stored, options, limit, on_progress)


def search_reading(
    stored: ArchiveReading, options: RestoreOptions, limit: int | None = None, on_progress: Callable[[int], None] = None
) -> Iterator[bytes]:
    """:func:`search_archive` on an archive already opened (its reader tells what was read)."""
    found = 0
    stored.aim(options)
    # Progress is the reader's own row count: the rows are not counted a second time here.
    after_block = (lambda: on_progress(stored.rows_read)) if on_progress else None
    for line in matching_lines(stored.blocks(), options, after_block):
        yield line + b"\n"
        found += 1
        if limit is not None and found >= limit:
            return


def matching_lines(
    blocks: Iterator[bytes], options: RestoreOptions, after_block: Callable[[], None] | None = None
) -> Iterator[bytes]:
    """The NDJSON lines of ``blocks`` (without their newline) that ``options`` keeps."""
    needle = options.needle()
    if needle is None:
        candidates = _lines(blocks, after_block)
    else:
        candidates = _lines_containing(blocks, needle, after_block)
    if needle is not None and options.contains_only():
        # Decided from the line's bytes where that is exact; a line with escapes is parsed.
        for line in candidates:
            found = _raw_log_holds(line, needle)
            if found or (found is None and options.matches(json.loads(line))):
                yield line
        return
    for line in candidates:
        if options.matches(json.loads(line)):
            yield line


# An archive record's raw log is its second member (DESIGN.md, archive record); the third follows it.
RAW_LOG_STARTS = b'","raw_log":"'
RAW_LOG_ENDS = b'","log_id":"'


def _raw_log_holds(line: bytes, needle: bytes) -> bool | None:
    """Whether the raw log of a record line holds ``needle`` (printable ASCII that JSON writes as it is,
    see RestoreOptions.needle), from the bytes alone; None when only parsing can tell (the value holds
    an escape, which ``needle`` might straddle, or the line is not laid out as a record).

    Inside a JSON string every quote is escaped, so the value ends at the first ``","log_id":"``."""
    start = line.find(RAW_LOG_STARTS)
    if start < 0:
        return None
    start += len(RAW_LOG_STARTS)
    end = line.find(RAW_LOG_ENDS, start)
    if end < 0 or line.find(b"\\", start, end) >= 0:
        return None
    return line.find(needle, start, end) >= 0


# A restore hands matching lines to the insert in pieces of about this size.
MATCHED_PIECE = 1 << 20


class MatchedBlocks:
    """The lines of ``blocks`` that ``options`` keeps, as NDJSON blocks of whole lines; ``rows`` counts
    them (a restore checks the staged rows against it)."""

    def __init__(self, blocks: Iterator[bytes], options: RestoreOptions):
        self.blocks, self.options, self.rows = blocks, options, 0

    def __iter__(self) -> Iterator[bytes]:
        piece, size = [], 0
        for line in matching_lines(self.blocks, self.options):
            piece.append(line)
            size += len(line) + 1
            self.rows += 1
            if size >= MATCHED_PIECE:
                yield b"\n".join(piece) + b"\n"
                piece, size = [], 0
        if piece:
            yield b"\n".join(piece) + b"\n"


SAMPLE_ROWS = 20_000
SAMPLE_DAYS = 5


@dataclass(frozen=True)
class FilterSample:
    """How many rows of a sample of the time range matched the filter: the filter's share, estimated."""

    sampled: int
    matched: int

    @property
    def share(self) -> float:
        return self.matched / self.sampled if self.sampled else 0.0


def sample_filter(archive: Archive, options: RestoreOptions, rows: int = SAMPLE_ROWS) -> FilterSample:
    """Read up to ``rows`` rows of the time range, spread over up to SAMPLE_DAYS of its days when the
    archive is indexed by day (the first rows of each), and count those the filter keeps."""
    in_range = options.range_only()
    sampled = matched = 0
    with open_archive(archive) as stored:
        stored.aim(in_range)
        if stored.days is None:
            sources, per_source = [stored.blocks()], rows
        else:
            days = stored.days
            if len(days) > SAMPLE_DAYS:  # evenly spaced, first and last included
                days = [days[round(i * (len(days) - 1) / (SAMPLE_DAYS - 1))] for i in range(SAMPLE_DAYS)]
            sources = [stored.reader.read_segments([day]) for day in days]
            per_source = -(-rows // max(len(days), 1))
        for blocks in sources:
            taken = 0
            for line in _lines(blocks):
                record = json.loads(line)
                if not in_range.matches(record):
                    continue
                sampled, taken = sampled + 1, taken + 1
                matched += options.matches(record)
                if taken >= per_source:
                    break
            blocks.close()  # a partial read: the rest of the day is not needed
    return FilterSample(sampled, matched)


def _lines(blocks: Iterator[bytes], after_block: Callable[[], None] | None = None) -> Iterator[bytes]:
    """The non-empty lines of NDJSON blocks (a line may span blocks); ``after_block`` runs after each."""
    carry = b""
    for block in blocks:
        lines = (carry + block).split(b"\n")
        carry = lines.pop()
        yield from (line for line in lines if line)
        if after_block:
            after_block()


def _lines_containing(
    blocks: Iterator[bytes], needle: bytes, after_block: Callable[[], None] | None = None
) -> Iterator[bytes]:
    """The lines of NDJSON blocks that contain ``needle`` (which holds no newline), found by searching
    each block for it rather than splitting every line out: the cost follows the matches. Splitting a
    million lines to test each had cost more than decompressing them."""
    carry = b""
    for block in blocks:
        data = carry + block if carry else block
        cut = data.rfind(b"\n") + 1  # whole lines end here; the rest waits for the next block
        carry = data[cut:]
        position = 0
        while (hit := data.find(needle, position, cut)) >= 0:
            start = data.rfind(b"\n", 0, hit) + 1
            end = data.find(b"\n", hit)
            yield data[start:end]
            position = end + 1
        if after_block:
            after_block()
