"""Helpers for tests that run archive jobs in the test process or watch the reaper take them over."""

from datetime import UTC, datetime, timedelta

from archives import services
from archives.models import Archive
from tests.celery_worker import wait_until


def archive_in_process(user, fractal, full_read: bool = False) -> Archive:
    """Make a completed archive of ``fractal`` here, without a worker; fails the test otherwise."""
    archive = services.request_archive(user, fractal, enqueue=False, full_read=full_read)
    services.run_archive(archive.id)
    archive.refresh_from_db()
    assert archive.status == Archive.Status.COMPLETED, archive.error
    return archive


def reap_when_lock_lapses(job):
    """Run the reaper as beat would, a minute on, until it takes ``job`` over; returns the fresh record."""

    def reaped():
        return str(job.pk) in services.reap_stale_jobs(now=datetime.now(UTC) + timedelta(seconds=60))

    wait_until(reaped, timeout=60, interval=0.5, what="the reaper to take the job over")
    job.refresh_from_db()
    return job
