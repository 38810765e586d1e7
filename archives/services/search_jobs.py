"""Searching an archive in the background, from the Manage tab: the matches are written, encrypted like
an archive, to a result file kept for 24 hours; the first 1,000 are shown and the whole result can be
downloaded as NDJSON until it expires.

Searches only read an archive, so they take no fractal lock. A search is owned by the worker that moved
it from pending to searching; every heartbeat and the completion are conditional on it still being
``searching``, so a worker the reaper gave up on (paused, stalled) writes nothing when it wakes: its
heartbeat finds the record failed, and its result file is never published or is deleted again.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from archives.models import Archive, ArchiveEvent, ArchiveSearch
from archives.services.errors import ArchiveError, NotRestorable, require_admin
from archives.services.history import record_event
from archives.services.jobs import stall_seconds
from archives.services.options import RestoreOptions
from archives.services.queue import SEARCH_TASK, enqueue_after_commit
from archives.services.search import search_archive
from strix import failpoints
from strix.crypto.container import ContainerWriter
from strix.crypto.keys import Keyring
from strix.crypto.reader import ContainerReader
from strix.fractals.models import Fractal
from strix.storage import get_store

log = logging.getLogger(__name__)

RESULT_LIFETIME = timedelta(hours=24)
PREVIEW_ROWS = 1000
BEAT_SECONDS = 2.0
WRITE_BLOCK = 1024 * 1024  # matches are handed to the container in blocks of about this size


class SearchLost(ArchiveError):
    """The search is no longer this worker's (the reaper failed it); nothing more may be written."""


class ResultUnavailable(ArchiveError):
    pass


class SearchCapReached(ArchiveError):
    """The fractal already has its share of searches queued or running."""


def result_file_name(search: ArchiveSearch) -> str:
    return f"searches/{search.archive.fractal_id}/{search.id}.strix-archive"


def request_search(user, archive: Archive, options: RestoreOptions, enqueue: bool = True) -> ArchiveSearch:
    """Queue a search of a completed archive; ``user=None`` is an operator at the command line."""
    if user is not None:
        require_admin(user, archive.fractal)
    if archive.status != Archive.Status.COMPLETED:
        raise NotRestorable(f"archive {archive.short_id} is {archive.status}; only completed archives can be searched.")
    if archive.verification == Archive.Verification.DAMAGED:
        raise NotRestorable(f"archive {archive.short_id} is damaged ({archive.damage}); it cannot be searched.")
    with transaction.atomic():
        # The fractal's row, locked, makes the count and the new search one step for concurrent requests.
        Fractal.objects.select_for_update().filter(pk=archive.fractal_id).first()
        search = _create_within_cap(user, archive, options)
    search.result_file = result_file_name(search)
    search.save(update_fields=["result_file"])
    detail = f"search {search.short_id} of archive {archive.short_id}: {search.criteria}"
    record_event(archive.fractal_id, ArchiveEvent.Action.SEARCH, "requested", detail, user)
    if enqueue:
        enqueue_after_commit(SEARCH_TASK, search.id, archive.fractal.name)
    return search


def _create_within_cap(user, archive: Archive, options: RestoreOptions) -> ArchiveSearch:
    cap = settings.STRIX_SEARCHES_PER_FRACTAL
    active = ArchiveSearch.objects.filter(archive__fractal_id=archive.fractal_id, status__in=ArchiveSearch.ACTIVE)
    if active.count() >= cap:
        raise SearchCapReached(
            f"fractal {archive.fractal.name} already has {cap} searches queued or running (at most "
            f"{cap}, STRIX_SEARCHES_PER_FRACTAL); start another when one has finished."
        )
    return ArchiveSearch.objects.create(
        archive=archive,
        requested_by=user,
        range_start=options.start,
        range_end=options.end,
        contains=options.contains,
        field_filter=options.field_text,
    )


class _Beat:
    """Progress written every BEAT_SECONDS, only while the search is still this worker's."""

    def __init__(self, search: ArchiveSearch):
        self.search = search
        self.rows = 0
        self.matches = 0
        self._last = 0.0

    def progress(self, rows: int) -> None:
        self.rows = rows
        failpoints.reached("search.scanning")
        if time.monotonic() - self._last >= BEAT_SECONDS:
            self.check()

    def check(self) -> None:
        updated = ArchiveSearch.objects.filter(pk=self.search.pk, status=ArchiveSearch.Status.SEARCHING).update(
            heartbeat_at=timezone.now(), rows_scanned=self.rows, matches=self.matches
        )
        self._last = time.monotonic()
        if not updated:
            raise SearchLost(f"search {self.search.short_id} was ended by another process; writing nothing more.")


def run_search(search_id) -> ArchiveSearch | None:
    """Do the work of a pending search (in a worker). The record says how it ended."""
    now = timezone.now()
    started = ArchiveSearch.objects.filter(pk=search_id, status=ArchiveSearch.Status.PENDING).update(
        status=ArchiveSearch.Status.SEARCHING, started_at=now, heartbeat_at=now
    )
    search = ArchiveSearch.objects.select_related("archive", "archive__fractal").filter(pk=search_id).first()
    if not started or search is None:  # already run, or deleted with its archive while pending
        return search
    store = get_store("archives")
    beat = _Beat(search)
    try:
        if search.archive is None:
            raise NotRestorable("the archive was deleted before the search started.")
        _write_result(search, store, beat)
        size = store.size(search.result_file)
    except SearchLost as e:
        log.warning("%s", e)
        search.refresh_from_db()
        return search
    except Exception as e:
        log.warning("search %s failed: %s", search.id, e)
        store.discard_partial(search.result_file)
        error = str(e) or e.__class__.__name__
        _end(search, ArchiveSearch.Status.FAILED, error=error, finished_at=timezone.now())
        return search
    finished = timezone.now()
    if not _end(
        search,
        ArchiveSearch.Status.COMPLETED,
        finished_at=finished,
        expires_at=finished + RESULT_LIFETIME,
        rows_scanned=beat.rows,
        matches=beat.matches,
        result_bytes=size,
    ):
        store.delete(search.result_file)  # published just after the reaper gave up on it: not ours to keep
    return search


def _write_result(search: ArchiveSearch, store, beat: _Beat) -> None:
    archive = search.archive
    options = RestoreOptions.of(search)
    # The header is readable without the key: it names the search, never what it looks for.
    metadata = {
        "search_id": str(search.id),
        "archive_id": str(archive.id),
        "fractal_id": str(archive.fractal_id),
        "fractal_name": archive.fractal.name,
    }
    with store.open_write(search.result_file) as sink:
        with ContainerWriter(sink, Keyring.from_settings(), "archive", metadata, app_version=settings.APP_VERSION) as w:
            pending, size, day = [], 0, None
            for line in search_archive(archive, options, on_progress=beat.progress):
                if line[14:24] != day:  # results are indexed by day, as archives are (docs/FORMAT.md)
                    w.write(b"".join(pending))
                    pending, size, day = [], 0, line[14:24]
                    w.begin_segment(day.decode("ascii", "replace"))
                pending.append(line)
                size += len(line)
                beat.matches += 1
                if size >= WRITE_BLOCK:
                    w.write(b"".join(pending))
                    pending, size = [], 0
            w.write(b"".join(pending))
        beat.check()  # still ours: only now may the file be published


def _end(search: ArchiveSearch, status: str, error: str = "", **fields) -> bool:
    """Record the outcome if the search is still running here; False if it was already ended."""
    updated = ArchiveSearch.objects.filter(pk=search.pk, status=ArchiveSearch.Status.SEARCHING).update(
        status=status, error=error, **fields
    )
    search.refresh_from_db()
    if updated:
        outcome = f"{search.matches:,} matches" if status == ArchiveSearch.Status.COMPLETED else error
        record_event(
            search.archive.fractal_id, ArchiveEvent.Action.SEARCH, status, f"search {search.short_id}: {outcome}"
        )
    return bool(updated)


def reap_stale_searches(now: datetime | None = None) -> list[str]:
    """Fail searches whose worker stopped beating; their partial result is removed."""
    now = now or timezone.now()
    stale = ArchiveSearch.objects.filter(
        status=ArchiveSearch.Status.SEARCHING, heartbeat_at__lt=now - timedelta(seconds=stall_seconds())
    )
    reaped = []
    for search in stale.select_related("archive"):
        error = f"the worker stopped (no progress for {stall_seconds():.0f} s); search again"
        if _end(search, ArchiveSearch.Status.FAILED, error=error, finished_at=now):
            get_store("archives").discard_partial(search.result_file)
            reaped.append(str(search.id))
    return reaped


def expire_searches(now: datetime | None = None) -> list[str]:
    """Delete result files past their 24 hours; the record stays, marked Expired."""
    now = now or timezone.now()
    expired = []
    for search in ArchiveSearch.objects.filter(status=ArchiveSearch.Status.COMPLETED, expires_at__lte=now):
        get_store("archives").delete(search.result_file)
        ArchiveSearch.objects.filter(pk=search.pk, status=ArchiveSearch.Status.COMPLETED).update(
            status=ArchiveSearch.Status.EXPIRED
        )
        expired.append(str(search.id))
    return expired


def delete_results_of(archive: Archive) -> int:
    """An archive deleted takes its searches and their results with it (copies of its rows); returns
    how many searches it had."""
    store = get_store("archives")
    searches = ArchiveSearch.objects.filter(archive=archive)
    for search in searches.exclude(result_file=""):
        store.delete(search.result_file)
    return searches.count()


def require_result(search: ArchiveSearch) -> None:
    if search.status != ArchiveSearch.Status.COMPLETED:
        raise ResultUnavailable(f"search {search.short_id} is {search.get_status_display().lower()}; no result.")
    if search.expires_at <= timezone.now():
        raise ResultUnavailable(f"the result of search {search.short_id} expired; search again.")


def result_blocks(search: ArchiveSearch) -> Iterator[bytes]:
    """The whole result, NDJSON, decrypted as it streams (for a download)."""
    require_result(search)
    with get_store("archives").open_read(search.result_file) as source:
        yield from ContainerReader(source, Keyring.from_settings())


def preview(search: ArchiveSearch, limit: int = PREVIEW_ROWS) -> list[dict]:
    """The first ``limit`` matches, parsed, reading only the start of the result file."""
    require_result(search)
    rows, carry = [], b""
    blocks = result_blocks(search)
    try:
        for block in blocks:
            lines = (carry + block).split(b"\n")
            carry = lines.pop()
            for line in lines:
                rows.append(json.loads(line))
                if len(rows) >= limit:
                    return rows
    finally:
        blocks.close()
    return rows
