"""Synthetic full archives: the days that did not change are copied from the previous archive's file.

An archive first asks the log store for each day's figures (rows, sum of row hashes, sum of salted
second hashes: one grouped statement that neither sorts nor formats). A day whose three figures equal
the ones the previous archive recorded for it, and whose rows the previous file's authenticated index
agrees with, is copied: its chunks are read, each authenticated at its position, and its compressed
bytes (one zstd frame) re-sealed into the new file under the new file's keys, never recompressed. Any
other day is read from the log store. The copied frame keeps its zstd content checksum, so every
restore and Verify of the new archive checks its content as for any day.

The result is a full archive of its own: its header, index, trailer and record describe only itself,
and it restores after the previous archive is deleted. What proves a day unchanged is documented in
docs/OPERATIONS.md ("Synthetic full archives").

A day is authenticated whole before any of it is written (held in memory up to
STRIX_ARCHIVE_COPY_BUFFER_MB, read a second time to copy it when larger). A day that fails
authentication is read from the log store instead and the previous archive is marked Damaged (an
alert follows, see alerts.py); its other days are each authenticated in the same way before they
are copied. Damage found while a large day is read the second time (the file changed between the two
reads) fails the archive: part of the day is already in the new file, which is then never published.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction

from archives.models import Archive
from archives.services.claims import Claim, require, write_job
from archives.services.stored_file import ArchiveReading, RestoreMismatch, check_index, open_archive
from archives.services.verify import mark_damaged
from strix import failpoints
from strix.crypto.container import ContainerWriter
from strix.crypto.errors import ContainerError
from strix.crypto.keys import Keyring
from strix.errors import OperatorError

log = logging.getLogger(__name__)

# What a synthetic archive compares: (rows, sum of row hashes, sum of salted second hashes).
FIGURES = 3


class PreviousFileChanged(OperatorError):
    """The previous archive's file failed while a checked day was being copied out of it."""


def previous_archive(archive: Archive, key_id: str) -> Archive | None:
    """The newest completed, undamaged archive of the same fractal made before ``archive``, in format 3
    or later, whose figures were taken with the current key's salt."""
    candidates = Archive.objects.filter(
        fractal_id=archive.fractal_id,
        status=Archive.Status.COMPLETED,
        created_at__lt=archive.created_at,
        format_version__gte=3,
        key_id=key_id,
    ).exclude(verification=Archive.Verification.DAMAGED)
    return candidates.order_by("-created_at").first()


@dataclass
class DayCopier:
    """Copies unchanged days of ``previous`` into a new archive's writer (see the module's rules)."""

    archive: Archive
    claim: Claim
    previous: Archive
    reading: ArchiveReading
    segments: dict = field(default_factory=dict)
    usable: bool = True
    marked_damaged: bool = False

    def can_copy(self, day: str, figures: tuple[int, int, int] | None) -> bool:
        if not self.usable or figures is None:
            return False
        recorded = self.previous.day_checksums.get(day)
        segment = self.segments.get(day)
        return (
            recorded is not None
            and len(recorded) == FIGURES
            and tuple(int(value) for value in recorded) == tuple(figures)
            and segment is not None
            and segment.rows == figures[0]
        )

    def copy(self, day: str, writer: ContainerWriter) -> bool:
        """Copy day ``day`` into ``writer``; False (nothing written) if the previous file failed."""
        segment = self.segments[day]
        try:
            held = self._authenticate(day)
        except ContainerError as e:  # this day is read instead; the others are each authenticated too
            self._damaged(f"day {day}", e)
            return False
        except OperatorError as e:  # storage unreachable, file gone: not damage, just no copying
            log.warning("archive %s reads day %s from the log store: %s", self.archive.id, day, e)
            self.usable = False
            return False
        failpoints.reached("archive.copy-checked")
        if held is not None:
            writer.copy_segment(day, held, segment.plaintext_bytes, segment.rows)
            return True
        # Too large to hold: read again, each chunk authenticated again as it is sealed.
        writer.copy_segment(day, self._read_again(day), segment.plaintext_bytes, segment.rows)
        return True

    def _read_again(self, day: str) -> Iterator[bytes]:
        """The day's chunks a second time; a failure now is the previous file's (never the writer's),
        and fails the archive: part of the day is already sealed into it."""
        try:
            yield from self.reader.sealed_segment(day)
        except ContainerError as e:
            self._damaged(f"day {day}", e)
            raise PreviousFileChanged(
                f"the file of archive {self.previous.short_id} failed while day {day} was copied out of it "
                f"({e}); it is marked Damaged and the next archive reads every day from the log store."
            ) from e
        except OperatorError as e:
            raise PreviousFileChanged(
                f"the file of archive {self.previous.short_id} could not be read while day {day} was copied "
                f"out of it ({e}); run the archive again."
            ) from e

    def _authenticate(self, day: str) -> list[bytes] | None:
        """Read day ``day``'s chunks, each authenticated at its position: the day's compressed bytes if
        they fit in STRIX_ARCHIVE_COPY_BUFFER_MB, else None (the day authenticated, nothing kept)."""
        limit = settings.STRIX_ARCHIVE_COPY_BUFFER_MB * 1024 * 1024
        held, size = [], 0
        for piece in self.reader.sealed_segment(day):
            size += len(piece)
            if held is not None and size <= limit:
                held.append(piece)
            else:
                held = None
        return held

    @property
    def reader(self):
        return self.reading.reader

    def _damaged(self, what: str, error: Exception) -> None:
        if not self.marked_damaged:  # once: each further day is authenticated (and read) on its own
            self.marked_damaged = True
            _previous_damaged(self.archive, self.claim, self.previous, what, error)


def _previous_damaged(archive: Archive, claim: Claim, previous: Archive, what: str, error: Exception) -> None:
    require(claim)  # a worker that lost its claim writes nothing
    damage = f"{what} failed while archive {archive.short_id} copied from it: {error}"
    mark_damaged(previous, damage, "its days were read from the log store instead")


def open_copier(stack: ExitStack, archive: Archive, claim: Claim) -> DayCopier | None:
    """The previous archive to copy unchanged days from, opened and checked (its header is this
    fractal's, its index the record's), and recorded on ``archive`` so that it is not deleted while
    days are copied out of it; None when there is none to use (then every day is read)."""
    keyring = Keyring.from_settings()
    with transaction.atomic():
        previous = previous_archive(archive, keyring.current_id)
        if previous is None:
            return None
        # Locked so that a deletion either went first (then it is gone here) or waits and then refuses
        # (delete.py): the file is never deleted while days are copied out of it.
        previous = Archive.objects.select_for_update().filter(pk=previous.pk).first()
        if previous is None:
            return None
        write_job(archive, claim, copied_from=previous.id)
    try:
        reading = stack.enter_context(open_archive(previous))
        index = reading.reader.index()
        check_index(previous, index)
    except (ContainerError, RestoreMismatch) as e:  # not readable as this archive's file: never copied
        _previous_damaged(archive, claim, previous, "its stored file", e)
        return None
    except OperatorError as e:
        log.warning("archive %s reads every day from the log store: archive %s: %s", archive.id, previous.id, e)
        return None
    return DayCopier(archive, claim, previous, reading, {s.label: s for s in index.segments})
