"""Searching an archive without restoring it: the stored file is authenticated and read as it streams,
and the records that match a time range and filters come out as NDJSON, in flat memory."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from archives.models import Archive
from archives.services.options import RestoreOptions
from archives.services.stored_file import ArchiveReading, open_archive
from strix.bytesearch import Haystack
from strix.streams import prefetched


def search_archive(
    archive: Archive, options: RestoreOptions, limit: int | None = None, on_progress: Callable[[int], None] = None
) -> Iterator[bytes]:
    """Yield the matching NDJSON lines (each ending with a newline), at most ``limit`` of them.

    Only the days the time range touches are read when the archive is indexed by day. Every chunk
    is authenticated before its lines are looked at, and read to its end the file is checked against
    its record as a restore would, but for the line-by-line row count (restore's and Verify's audit,
    see search_reading); a search stopped by ``limit`` has authenticated every chunk it read.
    """
    with open_archive(archive, audit_rows=False) as stored:
        yield from search_reading(stored, options, limit, on_progress)


def search_reading(
    stored: ArchiveReading, options: RestoreOptions, limit: int | None = None, on_progress: Callable[[int], None] = None
) -> Iterator[bytes]:
    """:func:`search_archive` on an archive already opened (its reader tells what was read).

    The blocks are decrypted and decompressed on a thread of their own, which releases the
    interpreter lock while it works, so that scanning one block and opening the next share the
    machine's cores. A search does not count the rows it scans one by one (a restore and Verify do):
    it reports the rows of the days it has read, by the file's authenticated index."""
    found = 0
    stored.aim(options)
    after_block = (lambda: on_progress(stored.rows_read)) if on_progress else None
    for line in matching_lines(prefetched(stored.blocks()), options, after_block):
        yield line
        found += 1
        if limit is not None and found >= limit:
            return


def matching_lines(
    blocks: Iterator[bytes], options: RestoreOptions, after_block: Callable[[], None] | None = None
) -> Iterator[bytes]:
    """The NDJSON lines of ``blocks`` (each with its newline) that ``options`` keeps."""
    needle = options.needle()
    if needle is None:
        for line in _lines(blocks, after_block):
            if options.matches(json.loads(line)):
                yield line + b"\n"
        return
    # Decided from the line's bytes where that is exact; a line with escapes (or other filters) is parsed.
    exact = options.contains_only()
    for block, start, end in _spans_containing(blocks, needle, after_block):
        found = _raw_log_holds(block, needle, start, end) if exact else None
        if found:
            yield block[start:end]
        elif found is None and options.matches(json.loads(block[start:end])):
            yield block[start:end]


# An archive record's raw log is its second member (DESIGN.md, archive record); the third follows it.
RAW_LOG_STARTS = b'","raw_log":"'
RAW_LOG_ENDS = b'","log_id":"'


def _raw_log_holds(line: bytes, needle: bytes, start: int = 0, end: int | None = None) -> bool | None:
    """Whether the raw log of the record line ``line[start:end]`` holds ``needle`` (printable ASCII
    that JSON writes as it is, see RestoreOptions.needle), from the bytes alone; None when only
    parsing can tell (the value holds an escape, which ``needle`` might straddle, or the line is not
    laid out as a record).

    Inside a JSON string every quote is escaped, so the value ends at the first ``","log_id":"``."""
    end = len(line) if end is None else end
    value = line.find(RAW_LOG_STARTS, start, end)
    if value < 0:
        return None
    value += len(RAW_LOG_STARTS)
    value_end = line.find(RAW_LOG_ENDS, value, end)
    if value_end < 0 or line.find(b"\\", value, value_end) >= 0:
        return None
    return line.find(needle, value, value_end) >= 0


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
            size += len(line)
            self.rows += 1
            if size >= MATCHED_PIECE:
                yield b"".join(piece)
                piece, size = [], 0
        if piece:
            yield b"".join(piece)


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
    for block, start, stop in _whole_lines(blocks, after_block):
        yield from (line for line in block[start : stop - 1].split(b"\n") if line)


def _spans_containing(
    blocks: Iterator[bytes], needle: bytes, after_block: Callable[[], None] | None = None
) -> Iterator[tuple[bytes, int, int]]:
    """``(block, start, end)`` of each line of NDJSON ``blocks`` that contains ``needle`` (which holds
    no newline): the line is ``block[start:end]``, its newline included. Found by searching the
    blocks for the needle rather than splitting every line out, so the cost follows the matches;
    nothing is copied but a line cut between two blocks."""
    for block, start, stop in _whole_lines(blocks, after_block):
        haystack = Haystack(block)
        position = start
        while (hit := haystack.find(needle, position, stop)) >= 0:
            line_start = block.rfind(b"\n", start, hit) + 1 or start
            line_end = block.find(b"\n", hit, stop) + 1
            yield block, line_start, line_end
            position = line_end


def _whole_lines(
    blocks: Iterator[bytes], after_block: Callable[[], None] | None = None
) -> Iterator[tuple[bytes, int, int]]:
    """``(block, start, stop)``: ``block[start:stop]`` holds whole lines of NDJSON ``blocks``, each
    with its newline; a line cut between blocks comes as a block of its own. A last line without a
    newline is not a record (every record ends with one) and is left out, as by :func:`_lines`."""
    carry = b""
    for block in blocks:
        first = block.find(b"\n")
        if first < 0:
            carry += block
        else:
            start = 0
            if carry:
                start = first + 1
                yield carry + block[:start], 0, len(carry) + start
            stop = block.rfind(b"\n") + 1
            if stop > start:
                yield block, start, stop
            carry = block[stop:]
        if after_block:
            after_block()
