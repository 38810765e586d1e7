"""Reading an archive's stored file: that it is the one its record describes (restore, search and
verify alike), and only the days a time range needs when the file is seekable."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from archives.models import Archive
from archives.services.options import RestoreOptions
from strix.crypto.errors import ContainerError
from strix.crypto.keys import Keyring
from strix.crypto.reader import ContainerReader, CountingReader
from strix.errors import OperatorError
from strix.storage import get_store


class RestoreMismatch(OperatorError):
    """The stored file is not the one the record describes, or holds other rows than it promised."""


def check_header(archive: Archive, header) -> None:
    """The authenticated header's kind, archive id and fractal id must be the record's."""
    found = {
        "kind": header.kind,
        "archive id": header.metadata.get("archive_id"),
        "fractal id": header.metadata.get("fractal_id"),
    }
    expected = {"kind": "archive", "archive id": str(archive.id), "fractal id": str(archive.fractal_id)}
    for what, value in found.items():
        if value != expected[what]:
            raise RestoreMismatch(
                f"the stored file {archive.file_name} is not this archive's: its {what} is {value or 'missing'}, "
                f"the record's is {expected[what]}; nothing was restored."
            )


def check_trailer(archive: Archive, trailer) -> None:
    """The file was read to its end and holds the rows its record promises."""
    if trailer is None:
        raise ContainerError("the archive was not read to its end; nothing was restored.")
    if trailer.rows != archive.row_count:
        raise RestoreMismatch(
            f"the stored file holds {trailer.rows} rows but the record of archive {archive.id} says "
            f"{archive.row_count}; nothing was restored."
        )


def recorded_index(header, trailer) -> dict:
    """The record's copy of a file's day index (Archive fields), from its header and trailer."""
    return {
        "format_version": header.version,
        "day_rows": {s.label: [s.rows, s.plaintext_bytes] for s in trailer.segments},
        "day_offsets": {s.label: [s.chunk, s.offset] for s in trailer.segments},
    }


def check_index(archive: Archive, index) -> None:
    """The file's authenticated day index agrees with the record (rows, and each day's place)."""
    check_trailer(archive, index)
    for segment in index.segments:
        recorded = archive.day_offsets.get(segment.label)
        if recorded is not None and list(recorded) != [segment.chunk, segment.offset]:
            raise RestoreMismatch(
                f"day {segment.label} of the stored file {archive.file_name} is at chunk {segment.chunk}, byte "
                f"{segment.offset}, but the record says chunk {recorded[0]}, byte {recorded[1]}; nothing was restored."
            )


class ArchiveReading:
    """An archive's stored file, opened and authenticated, read in full or by day."""

    def __init__(self, archive: Archive, source, audit_rows: bool = True):
        self.archive = archive
        self._source = CountingReader(source)
        self.reader = ContainerReader(self._source, Keyring.from_settings(), audit_rows=audit_rows)
        check_header(archive, self.reader.header)
        self.days: list[str] | None = None  # None: the whole file
        self.expected_rows = archive.row_count

    @property
    def rows_read(self) -> int:
        return self.reader.rows_read

    @property
    def bytes_read(self) -> int:
        return self._source.bytes_read

    def aim(self, options: RestoreOptions) -> None:
        """Read only the days the time range touches, when the file is indexed by day."""
        if not (options.start or options.end) or not self.reader.seekable:
            return
        index = self.reader.index()
        check_index(self.archive, index)
        segments = [s for s in index.segments if options.touches_day(s.label)]
        self.days = [s.label for s in segments]
        self.expected_rows = sum(s.rows for s in segments)

    def blocks(self) -> Iterator[bytes]:
        """The plaintext (NDJSON), authenticated; read in full, the file is checked against its record
        at the end. A day read alone is checked complete before the next one starts."""
        if self.days is not None:
            yield from self.reader.read_segments(self.days)
            return
        yield from self.reader
        check_index(self.archive, self.reader.trailer)


@contextmanager
def open_archive(archive: Archive, audit_rows: bool = True) -> Iterator[ArchiveReading]:
    """The archive's file, opened; ``audit_rows=False`` for a reader that needs only the bytes (see
    ContainerReader): its rows are then the index's."""
    with get_store("archives").open_read(archive.file_name) as source:
        yield ArchiveReading(archive, source, audit_rows)
