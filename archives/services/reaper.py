"""Finding jobs whose worker died or stalled, taking them over, and cleaning what they left.

The reaper runs every five minutes (celery-beat). A job is stale when its worker's lock lapsed and its
heartbeat is old (the worker died or is paused), or when its progress has not moved for
``STRIX_JOB_STALL_SECONDS`` (alive but stuck). The reaper then takes the job over with a new fence
(claims.py), so that nothing its old worker does from then on is written anywhere, and ends it: an
archive or an unverified restore fails, a verified restore is finished. Every ClickHouse statement of
a pass is bounded: a blocked one is left for the next pass, and the pass moves on.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.utils import timezone

from archives.models import Archive, ArchiveEvent, FractalClaim, RestoreJob
from archives.services import promote
from archives.services.claims import (
    PENDING_LOCK_TTL,
    Claim,
    release_claim,
    take_over,
    take_over_claim,
    write_job,
)
from archives.services.history import record_event
from archives.services.holds import hold_until_for
from archives.services.jobs import finish_job, stall_seconds
from strix import locks, logstore
from strix.storage import StorageError, get_store

log = logging.getLogger(__name__)

WORKER_STOPPED = "worker stopped: the job lost its heartbeat and lock; nothing it wrote was kept"
# No statement of a reaper pass waits longer than this; what did not finish is retried next pass.
STATEMENT_BOUND_SECONDS = 10.0


def _why_stale(job, now) -> str | None:
    """The reason to take ``job`` over, or None while its worker is alive and making progress."""
    if locks.fractal_lock_held(Claim.of(job).fractal_id, job.lock_token):
        stall = stall_seconds()
        if job.status in (Archive.Status.ARCHIVING, RestoreJob.Status.RESTORING) and job.progress_at:
            if job.progress_at < now - timedelta(seconds=stall):
                return f"stalled: no progress for {stall:.0f}s (STRIX_JOB_STALL_SECONDS); the job was stopped"
        return None
    if job.status in (Archive.Status.PENDING, RestoreJob.Status.PENDING):
        return WORKER_STOPPED if job.created_at < now - timedelta(seconds=PENDING_LOCK_TTL) else None
    last_sign = job.heartbeat_at or job.started_at or job.created_at
    return WORKER_STOPPED if last_sign < now - timedelta(seconds=2 * locks.lock_ttl()) else None


def reap_stale_jobs(now=None) -> list[str]:
    """Take over and end the active jobs whose worker is gone or stuck; returns the ids reaped."""
    now = now or timezone.now()
    reaped = []
    blocked: set[str] = set()  # staging tables whose DROP did not finish within the bound this pass
    with logstore.bounded(STATEMENT_BOUND_SECONDS):
        archives = Archive.objects.filter(status__in=Archive.ACTIVE)
        for job in [*archives, *RestoreJob.objects.filter(status__in=RestoreJob.ACTIVE)]:
            reason = _why_stale(job, now)
            if reason is None:
                continue
            try:
                if _reap(job, reason, blocked):
                    reaped.append(str(job.id))
                    log.warning("reaped %s %s: %s", type(job).__name__, job.id, reason)
            except (logstore.LogStoreError, StorageError) as e:
                log.warning("reaper: %s %s not finished (%s); retrying on the next pass", type(job).__name__, job.id, e)
        try:
            _release_abandoned_claims()
            _drop_orphan_staging_tables(blocked)
        except (logstore.LogStoreError, StorageError) as e:
            log.warning("reaper: cleaning up not finished (%s); retrying on the next pass", e)
    return reaped


def _reap(job, reason: str, blocked: set[str], ended_as: str = "failed") -> bool:
    """Take ``job`` over and end it (``ended_as``: failed, or cancelled for Flower's Terminate)."""
    claim = take_over(job)
    if claim is None:
        return False  # it ended or was taken over meanwhile
    if isinstance(job, Archive):
        store = get_store("archives")
        store.discard_partial(job.file_name)
        store.delete(job.file_name)  # an unfinished archive's file, should its upload have completed
        finish_job(job, claim, ended_as, error=reason)
        record_event(job.fractal_id, ArchiveEvent.Action.ARCHIVE, ended_as, f"archive {job.short_id}: {reason}")
    else:
        with logstore.serving(str(job.target_id)):  # where the worker kept its staging table
            _reap_restore(job, claim, reason, blocked, ended_as)
    return True


def _reap_restore(job: RestoreJob, claim: Claim, reason: str, blocked: set[str], ended_as: str) -> None:
    if not promote.is_committed(job):
        finish_job(job, claim, ended_as, error=reason)
        record_event(job.target_id, ArchiveEvent.Action.RESTORE, ended_as, f"restore {job.short_id}: {reason}")
        _drop_quietly(job.staging_table, blocked)  # the old worker's; if blocked, the next pass retries
    else:
        _finish_promotion(job, claim)


def end_terminated_job(job, reason: str) -> bool:
    """A job whose worker process was killed on purpose (Flower's Terminate): end it Cancelled now,
    cleaning up as for a dead worker, instead of waiting for the lock to lapse."""
    with logstore.bounded(STATEMENT_BOUND_SECONDS):
        return _reap(job, reason, set(), ended_as="cancelled")


def _finish_promotion(job: RestoreJob, claim: Claim) -> None:
    """After the commit point a restore is finished, not abandoned: promote under the new fence."""
    write_job(job, claim, staging_table=promote.staging_table_name(job))
    promote.adopt_staging_table(job)
    try:
        rows = promote.roll_forward(job, claim)
    except promote.PromotionUnclear as e:  # the staging table stays: it holds the only verified copy
        finish_job(job, claim, RestoreJob.Status.FAILED, error=f"worker stopped while promoting rows; {e}")
        return
    logstore.drop_table(job.staging_table)
    finish_job(
        job, claim, RestoreJob.Status.COMPLETED, rows_restored=rows, progress_rows=rows,
        hold_until=hold_until_for(job),
        error="the worker stopped after the rows were verified; the reaper finished the restore",
    )  # fmt: skip


def _drop_quietly(table: str, blocked: set[str]) -> None:
    """Drop a table no one owns; one a stopped worker's INSERT still holds is left for the next pass."""
    if table in blocked:
        return
    try:
        logstore.drop_table(table)
    except logstore.LogStoreError as e:
        blocked.add(table)
        log.warning("reaper: staging table %s not dropped yet (%s); the next pass retries", table, e)


def _release_abandoned_claims() -> None:
    """Claims whose lock lapsed with no job running: a retention run whose worker died, or a job whose
    worker died between recording its end and freeing the fractal."""
    active = FractalClaim.objects.filter(archive__status__in=Archive.ACTIVE) | FractalClaim.objects.filter(
        restore__status__in=RestoreJob.ACTIVE
    )
    for row in FractalClaim.objects.exclude(pk__in=active.values("pk")):
        if locks.fractal_lock_held(str(row.fractal_id)):
            continue
        # A new fence first, recorded in ClickHouse: a retention worker that wakes up deletes nothing.
        claim = take_over_claim(Claim(str(row.fractal_id), row.fence))
        if claim is not None:
            release_claim(claim)
            log.warning("released the claim on fractal %s left by a stopped worker", row.fractal_id)


def _drop_orphan_staging_tables(blocked: set[str]) -> None:
    """Staging tables no running or committed restore owns (a stopped worker's, a deleted job's)."""
    keep = RestoreJob.objects.filter(status__in=RestoreJob.ACTIVE) | RestoreJob.objects.filter(
        promotion__phase__in=[promote.CLEARING, promote.ATTACHING]
    )
    owned = set(keep.values_list("staging_table", flat=True))
    for node in logstore.every_shard():  # on a sharded cluster each restore staged on its target's shard
        with logstore.pinned_to(node):
            for table in logstore.tables_with_prefix(promote.STAGING_PREFIX):
                if table not in owned:
                    _drop_quietly(table, blocked)
