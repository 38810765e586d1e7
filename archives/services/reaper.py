"""Finding jobs whose worker died, failing them, and cleaning what they left."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.utils import timezone

from archives.models import Archive, FractalOperation, RestoreJob
from archives.services import promote
from archives.services.claims import PENDING_LOCK_TTL, release_claim
from archives.services.jobs import finish_job
from strix import logstore
from strix.storage import get_store
from workers import locks

log = logging.getLogger(__name__)

WORKER_STOPPED = "worker stopped: the job lost its heartbeat and lock; nothing it wrote was kept"


def _is_dead(job, now) -> bool:
    if locks.fractal_lock_held(str(_fractal_id(job)), job.lock_token):
        return False  # a live worker (or the queue wait) still holds the lock
    if job.status in (Archive.Status.PENDING, RestoreJob.Status.PENDING):
        return job.created_at < now - timedelta(seconds=PENDING_LOCK_TTL)
    last_sign = job.heartbeat_at or job.started_at or job.created_at
    return last_sign < now - timedelta(seconds=2 * locks.lock_ttl())


def _fractal_id(job):
    return job.fractal_id if isinstance(job, Archive) else job.target_id


def reap_stale_jobs(now=None) -> list[str]:
    """Fail active jobs whose worker is gone; returns the ids reaped."""
    now = now or timezone.now()
    reaped = []
    for archive in Archive.objects.filter(status__in=Archive.ACTIVE):
        if _is_dead(archive, now):
            get_store("archives").discard_partial(archive.file_name)
            finish_job(archive, Archive.Status.FAILED, error=WORKER_STOPPED)
            release_claim(archive.fractal_id, archive.lock_token, archive=archive)
            reaped.append(str(archive.id))
    for job in RestoreJob.objects.filter(status__in=RestoreJob.ACTIVE):
        if _is_dead(job, now):
            _reap_restore(job)
            reaped.append(str(job.id))
    _release_abandoned_maintenance_claims()
    _drop_orphan_staging_tables()
    for job_id in reaped:
        log.warning("reaped job %s: %s", job_id, WORKER_STOPPED)
    return reaped


def _reap_restore(job: RestoreJob) -> None:
    """Before the commit point: drop the staged rows, the target was never touched. After it: finish."""
    if not promote.is_committed(job):
        if job.staging_table:
            logstore.drop_table(job.staging_table)
        finish_job(job, RestoreJob.Status.FAILED, error=WORKER_STOPPED)
    else:
        try:
            rows = promote.roll_forward(job)
        except Exception as e:  # the staging table stays: it holds the only verified copy in ClickHouse
            finish_job(job, RestoreJob.Status.FAILED, error=f"worker stopped while promoting rows; {e}")
        else:
            logstore.drop_table(job.staging_table)
            finish_job(
                job, RestoreJob.Status.COMPLETED, rows_restored=rows, progress_rows=rows,
                error="the worker stopped after the rows were verified; the reaper finished the restore",
            )  # fmt: skip
    release_claim(job.target_id, job.lock_token, restore=job)


def _release_abandoned_maintenance_claims() -> None:
    """A retention run whose worker died leaves its claim row; once its lock has lapsed, free the fractal."""
    for claim in FractalOperation.objects.filter(archive=None, restore=None):
        if not locks.fractal_lock_held(str(claim.fractal_id)):
            claim.delete()
            log.warning("released the retention claim on fractal %s left by a stopped worker", claim.fractal_id)


def _drop_orphan_staging_tables() -> None:
    """Staging tables whose restore is no longer running (e.g. a job record deleted meanwhile)."""
    from archives.services.restore import STAGING_PREFIX

    keep = RestoreJob.objects.filter(status__in=RestoreJob.ACTIVE) | RestoreJob.objects.filter(
        promotion__phase__in=[promote.CLEARING, promote.ATTACHING]
    )
    active = set(keep.values_list("staging_table", flat=True))
    for table in logstore.tables_with_prefix(STAGING_PREFIX):
        if table not in active:
            logstore.drop_table(table)
