"""Searching an archive without restoring it: the stored file is authenticated and read as it streams,
and the records that match a time range and filters come out as NDJSON, in flat memory."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

from archives.models import Archive
from archives.services.options import RestoreOptions
from archives.services.stored_file import check_header, check_trailer
from strix.crypto.container import ContainerReader
from strix.crypto.keys import Keyring
from strix.storage import get_store


def _timestamp(record: dict) -> datetime:
    return datetime.fromisoformat(record["timestamp"].replace(" ", "T")).replace(tzinfo=UTC)


def _matches(record: dict, options: RestoreOptions) -> bool:
    if options.start or options.end:
        at = _timestamp(record)
        if (options.start and at < options.start) or (options.end and at >= options.end):
            return False
    if options.contains and options.contains not in record["raw_log"]:
        return False
    if options.field:
        key, value = options.field
        fields = json.loads(record["fields"] or "{}")
        if key not in fields or str(fields[key]) != value:
            return False
    return True


def _needle(text: str) -> bytes | None:
    """Bytes every matching line must contain, to skip most lines without parsing them; None when the
    text could be escaped differently in the stored JSON (quotes, backslashes, slashes, control bytes)."""
    if not text or any(c in text for c in '"\\/') or any(ord(c) < 0x20 for c in text):
        return None
    return text.encode()


def search_archive(
    archive: Archive, options: RestoreOptions, limit: int | None = None, on_progress: Callable[[int], None] = None
) -> Iterator[bytes]:
    """Yield the matching NDJSON lines (each ending with a newline), at most ``limit`` of them.

    Read to its end, the file is checked against its record (rows, trailer) as a restore would; a
    search stopped by ``limit`` has authenticated every chunk it read.
    """
    found = 0
    with get_store("archives").open_read(archive.file_name) as source:
        reader = ContainerReader(source, Keyring.from_settings())
        check_header(archive, reader.header)
        carry, rows = b"", 0
        needle = _needle(options.contains)
        for block in reader:
            lines = (carry + block).split(b"\n")
            carry = lines.pop()
            rows += len(lines)
            for line in lines:
                if needle is not None and needle not in line:
                    continue
                if line and _matches(json.loads(line), options):
                    yield line + b"\n"
                    found += 1
                    if limit is not None and found >= limit:
                        return
            if on_progress:
                on_progress(rows)
    check_trailer(archive, reader.trailer)
