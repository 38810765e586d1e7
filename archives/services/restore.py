"""Restoring an archive into a fractal without ever losing data.

Rows go into a staging table first (:func:`stage`), but only from a file that proves to be the
record's (kind, archive id, fractal id in its authenticated header). Only when the whole archive has
authenticated and the staged row count equals the trailer's and the record's is the promotion
committed (promote.py): the target is cleared (when asked) and the staged partitions attached, steps
that are finished even if the worker dies. A bad archive leaves the target exactly as it was; the
staging table is dropped at the end (kept only when promote.py cannot tell what reached the target,
for an operator to look at). A worker whose job was taken over writes nothing (claims.py).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings

from archives.models import Archive, ArchiveEvent, RestoreJob
from archives.services import promote
from archives.services.claims import Claim, ClaimLost, claim_fractal, holds, require, write_job
from archives.services.errors import JobCancelled, NotRestorable, require_admin
from archives.services.history import record_event
from archives.services.holds import hold_until_for, refuse_under_legal_hold
from archives.services.jobs import Heartbeat, ProgressCallback, finish_job, start_job
from archives.services.options import BadRestoreOptions, RestoreOptions
from archives.services.queue import RESTORE_TASK, enqueue_after_commit
from archives.services.search import MatchedBlocks
from archives.services.stored_file import RestoreMismatch, open_archive
from strix import failpoints, locks, logstore
from strix.fractals.models import Fractal

log = logging.getLogger(__name__)


def request_restore(
    user,
    archive: Archive,
    target: Fractal | None = None,
    clear_existing: bool = True,
    enqueue: bool = True,
    hold_days: int | None | str = "default",
    options: RestoreOptions | None = None,
) -> RestoreJob:
    """Claim the target and queue the restore; the user must administer the source and the target.

    ``user=None`` is an operator at the server's command line, who administers everything.
    """
    target = target or archive.fractal
    if user is not None:
        require_admin(user, archive.fractal)
        require_admin(user, target)
    if archive.status != Archive.Status.COMPLETED:
        raise NotRestorable(f"archive {archive.id} is {archive.status}; only completed archives can be restored.")
    options = options or RestoreOptions()
    if archive.verification == Archive.Verification.DAMAGED:
        raise NotRestorable(f"archive {archive.short_id} is damaged ({archive.damage}); it cannot be restored.")
    options.require_within(archive)
    hold_days = settings.STRIX_RESTORE_HOLD_DAYS if hold_days == "default" else hold_days
    require_hold_days(hold_days)
    if clear_existing:
        refuse_under_legal_hold(target.pk, f"replacing the logs of fractal {target.name}")

    def create(token: str, fence: int) -> RestoreJob:
        job = RestoreJob.objects.create(
            archive=archive,
            source_fractal_id=archive.fractal_id,
            archive_short_id=archive.short_id,
            archive_time_start=archive.time_start,
            archive_time_end=archive.time_end,
            target=target,
            clear_existing=clear_existing,
            requested_by=user,
            lock_token=token,
            fence=fence,
            expected_rows=rows_in_range(archive, options),
            hold_start=_later(archive.time_start, options.start),
            # The hold's end is its last instant; --to is exclusive.
            hold_end=_earlier(archive.time_end, options.end and options.end - timedelta(microseconds=1)),
            range_start=options.start,
            range_end=options.end,
            contains=options.contains,
            field_filter=options.field_text,
            hold_days=hold_days,
        )
        job.staging_table = promote.staging_table_name(job)
        job.save(update_fields=["staging_table"])
        return job

    job = claim_fractal(target, create, "restore")
    mode = "replace" if clear_existing else "append"
    # Each fractal's History names only itself: its admins may not administer the other side.
    if archive.fractal_id == target.pk:
        details = {target.pk: f"restore {job.short_id} of archive {archive.short_id}, {mode}"}
    else:
        details = {
            archive.fractal_id: f"restore {job.short_id} of archive {archive.short_id} into another fractal, {mode}",
            target.pk: f"restore {job.short_id} of an archive of another fractal, {mode}",
        }
    for fractal_id, detail in details.items():
        record_event(fractal_id, ArchiveEvent.Action.RESTORE, "requested", detail, user)
    if enqueue:
        enqueue_after_commit(RESTORE_TASK, job.id, target.name)
    return job


def run_restore(job_id, on_progress: ProgressCallback | None = None) -> RestoreJob:
    if not start_job(RestoreJob, job_id, RestoreJob.Status.RESTORING):
        return RestoreJob.objects.get(pk=job_id)
    job = RestoreJob.objects.select_related("archive", "target").get(pk=job_id)
    # Staging table, counts, clear and attach on one server: the target's (strix.logstore.cluster).
    with logstore.serving(str(job.target_id)):
        return _run(job, on_progress)


def _run(job: RestoreJob, on_progress: ProgressCallback | None) -> RestoreJob:
    claim = Claim.of(job)
    keep_staging = False
    try:
        if job.archive is None:
            raise NotRestorable("the archive was deleted before the restore started.")
        with Heartbeat(job, claim, on_progress) as heartbeat:
            stage(job, claim, heartbeat)
            heartbeat.check()
            if job.clear_existing:  # a legal hold set since the request stops the replacement
                refuse_under_legal_hold(job.target_id, f"replacing the logs of fractal {job.target.name}")
            promote.commit(job, claim)  # verified: from here on the restore is finished, not abandoned
            rows = promote.roll_forward(job, claim, heartbeat.progress)
            require(claim)
            logstore.drop_table(job.staging_table)
        finish_job(
            job, claim, RestoreJob.Status.COMPLETED, rows_restored=rows, progress_rows=rows,
            hold_until=hold_until_for(job),
        )  # fmt: skip
        log.info("restore %s into %s completed: %s rows", job.id, job.target.name, rows)
        skipped = f", {job.rows_skipped:,} already present" if job.rows_skipped else ""
        detail = f"restore {job.short_id}: {rows:,} restored{skipped}"
        record_event(job.target_id, ArchiveEvent.Action.RESTORE, "completed", detail)
        return job
    except Exception as e:
        if isinstance(e, ClaimLost) or not holds(claim):
            log.warning("restore %s into %s stopped, writing nothing more: %s", job.id, job.target.name, e)
            job.refresh_from_db()  # the record is the new owner's; report what it says
            return job
        if promote.is_committed(job) and not isinstance(e, promote.PromotionUnclear):
            _leave_to_reaper(job, claim, e)
            return job
        keep_staging = isinstance(e, promote.PromotionUnclear)
        log.warning("restore %s into %s failed: %s", job.id, job.target.name, e)
        error = str(e) or e.__class__.__name__
        ended = RestoreJob.Status.CANCELLED if isinstance(e, JobCancelled) else RestoreJob.Status.FAILED
    try:
        # The failure is recorded first and the fractal freed, whatever the cleanup below meets.
        finish_job(job, claim, ended, error=error)
    except ClaimLost as lost:  # a taken-over job's staging table and record belong to the reaper now
        log.warning("restore %s: %s; its outcome is the reaper's to record", job.id, lost)
        return job
    record_event(job.target_id, ArchiveEvent.Action.RESTORE, ended, f"restore {job.short_id}: {error}")
    if not keep_staging:
        _drop_staging_or_leave_to_reaper(job)
    return job


def _drop_staging_or_leave_to_reaper(job: RestoreJob) -> None:
    """Drop an ended restore's staging table; if ClickHouse cannot, the reaper's orphan pass will, and
    the record says so."""
    try:
        logstore.drop_table(job.staging_table)
    except logstore.LogStoreError as e:
        log.warning("restore %s: staging table %s left for the reaper: %s", job.id, job.staging_table, e)
        note = f" Its staging table {job.staging_table} could not be dropped ({e}); the reaper drops it later."
        RestoreJob.objects.filter(pk=job.pk).update(error=(job.error + note)[:5000])


def _leave_to_reaper(job: RestoreJob, claim: Claim, error: Exception) -> None:
    """After the commit point a failure (ClickHouse away…) must not abandon verified rows: the job stays
    active with its staging table and database claim, and the reaper retries the promotion."""
    log.warning("restore %s: promotion interrupted (%s); the reaper will finish it", job.id, error)
    try:
        write_job(job, claim, error=f"promotion interrupted ({error}); it will be retried")
    except ClaimLost:
        return
    locks.release_fractal_lock(claim.fractal_id, job.lock_token)  # so the reaper need not wait for the TTL


def stage(job: RestoreJob, claim: Claim, heartbeat: Heartbeat) -> int:
    """Stream the archive (or, for a time range, only its days) into the staging table and verify it;
    the target is not touched."""
    archive = job.archive
    options = RestoreOptions.of(job)
    with open_archive(archive) as stored:
        stored.aim(options)
        heartbeat.progress(0, stored.expected_rows, phase="Staging")  # the range's rows, when it has one
        require(claim)
        logstore.create_staging_table(job.staging_table, str(job.target_id))

        def records():
            for block in stored.blocks():
                heartbeat.progress(stored.rows_read)  # counted once, by the reader
                heartbeat.check()
                failpoints.reached("restore.staging")
                yield block

        if options.filters:  # only the matching records are sent (options.py: one definition of a match)
            matched = MatchedBlocks(records(), options.filters_only())
            logstore.insert_records(job.staging_table, matched)
            expected = matched.rows
        else:
            logstore.insert_records(job.staging_table, records(), rows_counted=lambda: stored.rows_read)
            expected = stored.expected_rows
    heartbeat.progress(stored.rows_read, phase="Verifying")
    staged = logstore.count_table(job.staging_table)
    if stored.rows_read != stored.expected_rows or staged != expected:
        raise RestoreMismatch(
            f"staged {staged} of {expected} rows, read {stored.rows_read} of the {stored.expected_rows} the archive "
            "holds there; the target was left untouched."
        )
    write_job(job, claim, bytes_read=stored.bytes_read)
    if options.has_range:
        require(claim)
        logstore.narrow_staging(job.staging_table, options.start, options.end)
        staged = logstore.count_table(job.staging_table)
    if not job.clear_existing and staged:
        staged = _skip_rows_already_present(job, claim, staged)
    return staged


def rows_in_range(archive: Archive, options: RestoreOptions) -> int | None:
    """The rows a restore of ``options``' range reads: the touched days' rows from the record."""
    if not options.has_range or not archive.day_rows:
        return archive.row_count
    return sum(rows for day, (rows, _size) in archive.day_rows.items() if options.touches_day(day))


MAX_HOLD_DAYS = 3650  # "until removed" is for longer


def require_hold_days(hold_days) -> None:
    if hold_days is not None and not (isinstance(hold_days, int) and 1 <= hold_days <= MAX_HOLD_DAYS):
        raise BadRestoreOptions(
            f"a restore's hold lasts 1 to {MAX_HOLD_DAYS} days, or until removed; not {str(hold_days)[:20]!r}."
        )


def _later(a, b):
    return b if a is None or (b is not None and b > a) else a


def _earlier(a, b):
    return b if a is None or (b is not None and b < a) else a


def _skip_rows_already_present(job: RestoreJob, claim: Claim, staged: int) -> int:
    """Append never duplicates: staged rows whose log_id the target already holds in the restored time
    range are dropped from the staging table before promotion (restoring the same archive twice adds
    nothing the second time). Returns the rows left to promote."""
    archive = job.archive
    require(claim)
    logstore.drop_staged_duplicates(job.staging_table, str(job.target_id), archive.time_start, archive.time_end)
    left = logstore.count_table(job.staging_table)
    write_job(job, claim, rows_skipped=staged - left)
    return left
