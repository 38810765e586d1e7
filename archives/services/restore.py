"""Restoring an archive into a fractal without ever losing data.

Rows go into a staging table first (:func:`stage`). Only when the whole archive has authenticated and
the staged row count equals the trailer's is the promotion committed (promote.py): the target is
cleared (when asked) and the staged partitions attached, steps that are finished even if the worker
dies. A bad archive leaves the target exactly as it was; the staging table is dropped at the end
(kept only when promote.py cannot tell what reached the target, for an operator to look at).
"""

from __future__ import annotations

import logging

from django.db import transaction

from archives.models import Archive, RestoreJob
from archives.services import promote
from archives.services.claims import claim_fractal, release_claim
from archives.services.errors import NotRestorable, require_admin
from archives.services.jobs import Heartbeat, ProgressCallback, finish_job, start_job
from strix import logstore
from strix.crypto.container import ContainerReader
from strix.crypto.errors import ContainerError
from strix.crypto.keys import Keyring
from strix.fractals.models import Fractal
from strix.storage import get_store
from workers import locks

log = logging.getLogger(__name__)

STAGING_PREFIX = "restore_staging_"


class RestoreMismatch(Exception):
    pass


def staging_table_name(job: RestoreJob) -> str:
    return f"{STAGING_PREFIX}{job.id.hex}"


def request_restore(
    user, archive: Archive, target: Fractal | None = None, clear_existing: bool = True, enqueue: bool = True
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

    def create(token: str) -> RestoreJob:
        job = RestoreJob.objects.create(
            archive=archive,
            target=target,
            clear_existing=clear_existing,
            requested_by=user,
            lock_token=token,
            expected_rows=archive.row_count,
        )
        job.staging_table = staging_table_name(job)
        job.save(update_fields=["staging_table"])
        return job

    job = claim_fractal(target, create, "restore")
    if enqueue:
        from workers.tasks import restore_archive

        transaction.on_commit(lambda: restore_archive.apply_async([str(job.id)], task_id=str(job.id)))
    return job


def run_restore(job_id, on_progress: ProgressCallback | None = None) -> RestoreJob:
    if not start_job(RestoreJob, job_id, RestoreJob.Status.RESTORING):
        return RestoreJob.objects.get(pk=job_id)
    job = RestoreJob.objects.select_related("archive", "target").get(pk=job_id)
    keep_staging = False
    try:
        if job.archive is None:
            raise NotRestorable("the archive was deleted before the restore started.")
        with Heartbeat(job, job.target_id, on_progress) as heartbeat:
            stage(job, heartbeat)
            promote.commit(job)  # verified: from here on the restore is finished, not abandoned
            rows = promote.roll_forward(job)
        finish_job(job, RestoreJob.Status.COMPLETED, rows_restored=rows, progress_rows=rows)
        log.info("restore %s into %s completed: %s rows", job.id, job.target.name, rows)
    except Exception as e:
        if promote.is_committed(job) and not isinstance(e, promote.PromotionUnclear):
            _leave_to_reaper(job, e)
            return job
        keep_staging = isinstance(e, promote.PromotionUnclear)
        log.warning("restore %s into %s failed: %s", job.id, job.target.name, e)
        finish_job(job, RestoreJob.Status.FAILED, error=str(e) or e.__class__.__name__)
    try:
        if not keep_staging:
            logstore.drop_table(job.staging_table)
    finally:
        release_claim(job.target_id, job.lock_token, restore=job)
    return job


def _leave_to_reaper(job: RestoreJob, error: Exception) -> None:
    """After the commit point a failure (ClickHouse away…) must not abandon verified rows: the job stays
    active with its staging table and database claim, and the reaper retries the promotion."""
    log.warning("restore %s: promotion interrupted (%s); the reaper will finish it", job.id, error)
    RestoreJob.objects.filter(pk=job.pk).update(error=f"promotion interrupted ({error}); it will be retried")
    locks.release_fractal_lock(str(job.target_id), job.lock_token)  # so the reaper need not wait for the TTL


def stage(job: RestoreJob, heartbeat: Heartbeat) -> int:
    """Stream the archive into the staging table and verify it; the target is not touched."""
    archive = job.archive
    heartbeat.progress(0, archive.row_count)
    logstore.create_staging_table(job.staging_table, str(job.target_id))
    with get_store("archives").open_read(archive.file_name) as source:
        reader = ContainerReader(source, Keyring.from_settings())
        failure: list[BaseException] = []

        def records():
            rows = 0
            try:
                for block in reader:
                    rows += block.count(b"\n")
                    heartbeat.progress(rows)
                    heartbeat.check()
                    yield block
            except BaseException as e:  # keep the archive's own error; the HTTP client would wrap it
                failure.append(e)
                raise

        try:
            logstore.insert_records(job.staging_table, records())
        except Exception:
            if failure:
                raise failure[0] from None
            raise
        if failure:
            raise failure[0]
    trailer = reader.trailer
    if trailer is None:
        raise ContainerError("the archive was not read to its end; nothing was restored.")
    staged = logstore.count_table(job.staging_table)
    if staged != trailer.rows:
        raise RestoreMismatch(
            f"staged {staged} rows but the archive holds {trailer.rows}; the target was left untouched."
        )
    return staged
