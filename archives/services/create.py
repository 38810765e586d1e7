"""Creating a fractal archive: log store → NDJSON records → container → archives storage, streamed."""

from __future__ import annotations

import bisect
import logging
import time
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings

from archives.models import Archive, ArchiveEvent, describe_days
from archives.services import synthetic
from archives.services.claims import Claim, ClaimLost, claim_fractal, holds, release_claim, require
from archives.services.delete import prune_archives
from archives.services.errors import ArchiveError, JobCancelled, require_admin
from archives.services.history import record_event
from archives.services.jobs import Heartbeat, ProgressCallback, finish_job, start_job
from archives.services.queue import ARCHIVE_TASK, enqueue_after_commit
from archives.services.stored_file import recorded_index
from strix import failpoints, logstore
from strix.crypto.container import ContainerWriter
from strix.crypto.keys import Keyring, figures_salt
from strix.fractals.models import Fractal
from strix.storage import get_store

log = logging.getLogger(__name__)


def archive_file_name(archive: Archive) -> str:
    return f"{archive.fractal_id}/{archive.id}.strix-archive"


def request_archive(
    user, fractal: Fractal, kind: str = Archive.Kind.MANUAL, enqueue: bool = True, full_read: bool = False
) -> Archive:
    """Claim the fractal and queue an archive of it; raises FractalBusy or NotAllowed at once.

    Scheduled archives pass ``user=None`` and are made on the system's behalf. Unless ``full_read``,
    the days unchanged since the previous archive are copied from its file (synthetic.py).
    """
    if user is not None:
        require_admin(user, fractal)

    def create(token: str, fence: int) -> Archive:
        archive = Archive.objects.create(
            fractal=fractal, kind=kind, requested_by=user, lock_token=token, fence=fence, full_read=full_read
        )
        archive.file_name = archive_file_name(archive)
        archive.save(update_fields=["file_name"])
        return archive

    archive = claim_fractal(fractal, create, "archive")
    how = " (full read)" if full_read else ""
    record_event(fractal.pk, ArchiveEvent.Action.ARCHIVE, "requested", f"{kind} archive {archive.short_id}{how}", user)
    if enqueue:
        enqueue_after_commit(ARCHIVE_TASK, archive.id, fractal.name)
    return archive


def run_archive(archive_id, on_progress: ProgressCallback | None = None) -> Archive:
    """Do the work of a pending archive (in a worker). The record says how it ended."""
    if not start_job(Archive, archive_id, Archive.Status.ARCHIVING, deletes_rows=False):
        return Archive.objects.get(pk=archive_id)
    archive = Archive.objects.select_related("fractal").get(pk=archive_id)
    claim = Claim.of(archive)
    store = get_store("archives")
    try:
        with Heartbeat(archive, claim, on_progress) as heartbeat:
            result = _write_archive(archive, claim, store, heartbeat)
        failpoints.reached("archive.after-publish")
        size = store.size(archive.file_name)
    except Exception as e:
        if isinstance(e, ClaimLost) or not holds(claim):
            log.warning("archive %s of %s stopped, writing nothing more: %s", archive.id, archive.fractal.name, e)
            archive.refresh_from_db()  # the record is the new owner's; report what it says
            return archive
        if isinstance(e, JobCancelled):
            _fail(archive, claim, store, str(e), Archive.Status.CANCELLED)
            return archive
        log.exception("archive %s of fractal %s failed", archive.id, archive.fractal.name)
        _fail(archive, claim, store, str(e) or e.__class__.__name__)
        return archive
    try:
        finish_job(archive, claim, Archive.Status.COMPLETED, release=False, size_bytes=size, **result)
    except ClaimLost as e:
        # The file went up under this archive's own name, but the job had been taken over and failed:
        # no record will point at the file, and no other job ever writes that name.
        log.warning(
            "archive %s was taken over after its upload (%s): writing nothing more, removing its own file",
            archive.id,
            e,
        )
        store.delete(archive.file_name)
        archive.refresh_from_db()
        return archive
    log.info("archive %s of fractal %s completed: %s rows", archive.id, archive.fractal.name, result["row_count"])
    days = describe_days(result["days_copied"], result["days_read"], archive.full_read)
    record_event(
        archive.fractal_id,
        ArchiveEvent.Action.ARCHIVE,
        "completed",
        f"archive {archive.short_id}: {result['row_count']:,} rows; {days}",
    )
    try:
        prune_archives(archive.fractal, claim)  # only once the new archive is safely stored
    except Exception as e:  # the archive itself is complete; pruning is retried after the next one
        log.warning("pruning archives of %s after archive %s failed: %s", archive.fractal.name, archive.id, e)
    release_claim(claim, archive.lock_token)
    return archive


def _fail(archive: Archive, claim: Claim, store, error: str, status=Archive.Status.FAILED) -> None:
    try:
        require(claim)
        store.discard_partial(archive.file_name)
        finish_job(archive, claim, status, error=error)
        record_event(archive.fractal_id, ArchiveEvent.Action.ARCHIVE, status, f"archive {archive.short_id}: {error}")
    except ClaimLost as lost:
        log.warning("archive %s: %s; its outcome is the reaper's to record", archive.id, lost)


def _write_archive(archive: Archive, claim: Claim, store, heartbeat: Heartbeat) -> dict:
    fractal = archive.fractal
    fractal_id = str(fractal.id)
    since = fractal.retention_cutoff()  # only rows inside the retention window
    keyring = Keyring.from_settings()
    heartbeat.progress(0, phase="Counting")
    # Each day's figures and the archive's time range, in one statement taken before any day is
    # streamed or copied: every row the figures count is in this archive. Retention's proof and the
    # next archive's copying both rest on them.
    figures = logstore.day_fingerprints(fractal_id, since, figures_salt(keyring.current, fractal_id))
    expected, first, last = figures.rows, figures.first, figures.last
    heartbeat.progress(0, expected, phase="Reading")  # the total is known before the first row
    metadata = {
        "archive_id": str(archive.id),
        "fractal_id": fractal_id,
        "fractal_name": fractal.name,
        "kind": archive.kind,
        **({"time_start": _iso(first), "time_end": _iso(last)} if expected else {}),
        **({"retention_cutoff": _iso(since)} if since else {}),
    }
    # The span taken here is the archive's time range, in its header and in its record alike: rows
    # are streamed up to it, so a row arriving meanwhile with a later timestamp waits for the next archive.
    until = logstore.just_after(last) if expected else None
    counts = {"days_copied": 0, "days_read": 0, "rows_read": 0}
    with ExitStack() as stack:
        copier = None if archive.full_read or not expected else synthetic.open_copier(stack, archive, claim)
        streams = stack.enter_context(logstore.RecordStreams(fractal_id))
        sink = stack.enter_context(store.open_write(archive.file_name))
        windows = logstore.windows_between(first, last, since, until) if expected else []
        # What each day takes, decided once: a copy from the previous archive, or a read (a query for
        # a run of days). A day whose copy fails is read all the same, on its own.
        steps = _plan(windows, figures.days, copier)
        reads = [(step.windows[0][0], step.windows[-1][1]) for step in steps if not step.copy]
        with ContainerWriter(sink, keyring, "archive", metadata, app_version=settings.APP_VERSION) as writer:
            for step in steps:
                if step.copy:
                    day = _day(step.windows[0])
                    heartbeat.progress(writer.rows_written, phase="Copying")
                    if copier.copy(day, writer):
                        counts["days_copied"] += 1
                        heartbeat.progress(writer.rows_written)
                        heartbeat.check()
                        continue
                _read(step, streams, writer, heartbeat, _next_after(reads, step.windows[0][0]), counts)
            heartbeat.progress(writer.rows_written, phase="Publishing")
            trailer = writer.close()
        _require_counted_rows(figures.days, trailer)
        heartbeat.check()
        require(claim)  # the file is published only by the job's owner
        failpoints.reached("archive.before-publish")
    heartbeat.progress(trailer.rows)
    return {
        "row_count": trailer.rows,
        "key_id": writer.header.key_id,
        "time_start": first,
        "time_end": last,
        "progress_rows": trailer.rows,
        "day_checksums": {day: list(values) for day, values in figures.days.items()},
        **counts,
        # The file's own day index, for restore estimates and for reading only the days asked for.
        **recorded_index(writer.header, trailer),
    }


# The next day's query is sent when the day being read has about this long left to stream.
SEND_AHEAD_SECONDS = 1.0


class _SendAhead:
    """Sends the next read's query near the end of the days being read, so that ClickHouse reads and
    sorts it while these are still compressed (logstore.RecordStreams). Near the end only: a query
    sent ahead is held by its unread socket, and ClickHouse gives up on a client that reads nothing
    for long (http_send_timeout: 1,800 s on 18.16, its default may be lower on other releases)."""

    def __init__(self, streams, window: tuple | None, rows: int):
        self.streams, self.window = streams, window
        self.rows = rows  # counted before the stream began
        self.started = time.monotonic()

    def after(self, rows: int) -> None:
        if self.window is None or not rows:
            return
        seconds_left = (self.rows - rows) * (time.monotonic() - self.started) / rows
        if seconds_left <= SEND_AHEAD_SECONDS:
            self.streams.send_ahead(*self.window)
            self.window = None


# Days are read together, one query for a run of them, up to this many rows (by the figures): a
# query per day of a small fractal cost ClickHouse 10 % more CPU (more granules read at the days'
# edges, a sort and a response each). A larger day is read alone, as before.
READ_ROWS = 200_000


@dataclass
class _Step:
    """Days of an archive taken together: one copied day, or a run of days read with one query."""

    copy: bool
    windows: list[tuple]
    rows: int = 0  # the figures' rows of its days


def _plan(windows: list[tuple], days: dict, copier) -> list[_Step]:
    steps: list[_Step] = []
    reads = 0
    for window in windows:
        day = _day(window)
        figures = days.get(day)
        rows = figures[0] if figures else 0
        if copier and copier.can_copy(day, figures):
            steps.append(_Step(True, [window], rows))  # its rows: for a read, should the copy fail
            continue
        # The first read is a day alone: its query is the only one not sent ahead, and ClickHouse
        # sorts all of a read's rows before it sends the first (0.12 s for six days here, 0.05 for one).
        extends = steps and not steps[-1].copy and reads > 1 and steps[-1].rows + rows <= READ_ROWS
        if extends:
            steps[-1].windows.append(window)
            steps[-1].rows += rows
        else:
            steps.append(_Step(False, [window], rows))
            reads += 1
    return steps


def _read(step: _Step, streams, writer: ContainerWriter, heartbeat: Heartbeat, ahead: tuple | None, counts) -> None:
    """Stream a run of days from ClickHouse into the archive, each day its own zstd frame, indexed:
    restorable alone."""
    before = writer.rows_written
    heartbeat.progress(before, phase="Reading")
    days = {_day(window) for window in step.windows}
    send_ahead = _SendAhead(streams, ahead, step.rows)
    current = None
    for day, records in logstore.records_by_day(streams.stream(step.windows[0][0], step.windows[-1][1])):
        if day != current:
            if day not in days:
                raise logstore.LogStoreQueryError(f"ClickHouse sent a row of {day}, outside the days asked for")
            writer.begin_segment(day)
            current = day
            counts["days_read"] += 1
        writer.write(records)
        failpoints.reached("archive.streaming")
        heartbeat.progress(writer.rows_written)
        heartbeat.check()
        send_ahead.after(writer.rows_written - before)
    counts["rows_read"] += writer.rows_written - before


class RowsRemovedWhileArchived(ArchiveError):
    """Rows the figures counted are not in the archive."""


def _require_counted_rows(figures: dict, trailer) -> None:
    """Every row the figures counted is in the archive, day by day, before it is published.

    The figures are taken before any day is streamed, and while the archive holds the fractal's claim
    its rows only grow (retention and restores wait for the claim): a day may hold more rows than
    counted (they arrived meanwhile), never fewer. Fewer means rows were removed by something that did
    not wait; publishing then would record figures that the file does not hold, which retention's
    proof and the next archive's copying would trust."""
    archived = {segment.label: segment.rows for segment in trailer.segments}
    for day, (rows, *_) in sorted(figures.items()):
        if archived.get(day, 0) < rows:
            raise RowsRemovedWhileArchived(
                f"day {day} had {rows:,} rows when the archive counted them, but only {archived.get(day, 0):,} "
                "were read: rows were deleted from the fractal while it was archived, by something that did "
                "not wait for the archive. Nothing was published; run the archive again."
            )


def _day(window: tuple) -> str:
    return window[0].date().isoformat()


def _next_after(windows: list[tuple], start: datetime) -> tuple | None:
    """The first of ``windows`` (in time order) that starts after ``start``."""
    position = bisect.bisect_right(windows, start, key=lambda window: window[0])
    return windows[position] if position < len(windows) else None


def _iso(value: datetime) -> str:
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")
