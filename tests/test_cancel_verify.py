"""Cancel (from the Manage tab or Flower's Terminate) and Verify, with real workers and services."""

import pytest
from celery.result import AsyncResult

from archives import services
from archives.models import Archive, ArchiveEvent, FractalClaim, RestoreJob
from archives.services.promote import STAGING_PREFIX
from strix import logstore
from strix.storage import get_store
from tests.celery_worker import wait_for_job, wait_until
from tests.jobs import archive_in_process

pytestmark = pytest.mark.django_db(transaction=True)

# The worker pauses 6 s a few blocks into each job (its heartbeat goes on): time to cancel it.
SLOW = "archive.streaming#3:sleep6,restore.staging#3:sleep6"


def started(job):
    wait_until(lambda: type(job).objects.get(pk=job.pk).progress_rows > 0, 60, 0.1, "the job to be under way")


def test_a_pending_archive_is_cancelled_at_once_and_frees_the_fractal(admin, make_fractal):
    fractal = make_fractal()
    archive = services.request_archive(admin, fractal, enqueue=False)
    assert "before it started" in services.cancel_job(admin, archive)
    archive.refresh_from_db()
    assert archive.status == Archive.Status.CANCELLED and not FractalClaim.objects.exists()
    services.run_archive(archive.id)  # a late delivery of its task does nothing
    archive.refresh_from_db()
    assert archive.status == Archive.Status.CANCELLED
    assert ArchiveEvent.objects.filter(fractal=fractal, action="cancel", outcome="cancelled").exists()


def test_cancel_mid_archive_ends_cancelled_with_no_file_and_the_fractal_free(
    failpoint_worker, admin, make_fractal, seed_rows
):
    from archives.tasks import archive_fractal

    fractal = make_fractal()
    seed_rows(fractal, 300_000, days=30, seed=41)
    worker = failpoint_worker(SLOW)
    archive = services.request_archive(admin, fractal, enqueue=False)
    archive_fractal.apply_async([str(archive.id)], queue=worker.queue, task_id=str(archive.id))
    started(archive)

    assert "stops at its next block" in services.cancel_job(admin, archive)
    archive = wait_for_job(archive, timeout=60)
    assert archive.status == Archive.Status.CANCELLED, archive.error
    assert list(get_store("archives").base.rglob(f"*{archive.id}*")) == []
    assert not FractalClaim.objects.exists()


def test_cancel_mid_restore_leaves_the_target_untouched_and_no_staging_table(
    failpoint_worker, admin, make_fractal, seed_rows
):
    from archives.tasks import restore_archive

    source, target = make_fractal(), make_fractal()
    seed_rows(source, 300_000, days=30, seed=42)
    seed_rows(target, 1_000, seed=43)
    archive = archive_in_process(admin, source)
    before = logstore.fractal_checksum(str(target.id))
    worker = failpoint_worker(SLOW)
    job = services.request_restore(admin, archive, target=target, enqueue=False)
    restore_archive.apply_async([str(job.id)], queue=worker.queue, task_id=str(job.id))
    started(job)

    services.cancel_job(admin, job)
    job = wait_for_job(job, timeout=60)
    assert job.status == RestoreJob.Status.CANCELLED, job.error
    assert logstore.fractal_checksum(str(target.id)) == before
    assert logstore.tables_with_prefix(STAGING_PREFIX) == []
    assert not FractalClaim.objects.exists()


def test_flowers_terminate_cancels_the_job_and_cleans_up(failpoint_worker, admin, make_fractal, seed_rows):
    from archives.tasks import archive_fractal

    fractal = make_fractal()
    seed_rows(fractal, 300_000, days=30, seed=44)
    worker = failpoint_worker(SLOW, pool="prefork")  # Terminate kills the pool process running the task
    archive = services.request_archive(admin, fractal, enqueue=False)
    archive_fractal.apply_async([str(archive.id)], queue=worker.queue, task_id=str(archive.id))
    started(archive)

    AsyncResult(str(archive.id)).revoke(terminate=True)  # what Flower's Terminate button sends
    archive = wait_for_job(archive, timeout=60)
    assert archive.status == Archive.Status.CANCELLED and "terminated" in archive.error
    assert list(get_store("archives").base.rglob(f"*{archive.id}*")) == []
    assert not FractalClaim.objects.exists()


def test_verify_marks_a_flipped_byte_damaged_and_a_damaged_archive_cannot_be_restored(
    celery_worker, admin, make_fractal, seed_rows
):
    fractal = make_fractal()
    seed_rows(fractal, 5_000, seed=45)
    archive = archive_in_process(admin, fractal)

    services.request_verify(admin, archive)
    wait_until(lambda: Archive.objects.get(pk=archive.pk).verification != "verifying", 60, 0.2, "the verify task")
    archive.refresh_from_db()
    assert archive.verification == Archive.Verification.VERIFIED and archive.verified_at

    path = get_store("archives").base / archive.file_name
    path.chmod(0o600)
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0x01
    path.write_bytes(bytes(blob))
    services.request_verify(admin, archive, enqueue=False)
    archive = services.run_verify(archive.id)
    assert archive.verification == Archive.Verification.DAMAGED and "failed authentication" in archive.damage
    with pytest.raises(services.NotRestorable, match="is damaged"):
        services.request_restore(admin, archive, target=make_fractal())
    assert not RestoreJob.objects.exists()
