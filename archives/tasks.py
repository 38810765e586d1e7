"""Celery tasks: thin wrappers that pass ids to the archive services and report progress."""

from celery import shared_task, signals

from archives import services
from archives.services import alerts, search_jobs
from archives.services.cancel import cancel_revoked
from archives.services.errors import JobFailed
from archives.services.queue import ARCHIVE_TASK, RESTORE_TASK, SEARCH_TASK, VERIFY_TASK
from archives.services.retention import enforce_all
from archives.services.verify import run_verify


def _progress_reporter(task, fractal: str | None):
    def report(done: int, expected: int | None) -> None:
        if task.request.id:  # also callable outside a worker (eager or direct calls)
            meta = {"rows_done": done, "rows_expected": expected, "fractal": fractal}
            task.update_state(state="PROGRESS", meta=meta)

    return report


@shared_task(bind=True, name=ARCHIVE_TASK, acks_late=True)
def archive_fractal(self, archive_id: str, fractal: str | None = None) -> dict:
    archive = services.run_archive(archive_id, on_progress=_progress_reporter(self, fractal))
    if archive.status == archive.Status.FAILED:
        raise JobFailed(archive.error)
    return {"archive_id": archive_id, "status": archive.status, "rows": archive.row_count}


@shared_task(bind=True, name=RESTORE_TASK, acks_late=True)
def restore_archive(self, job_id: str, fractal: str | None = None) -> dict:
    job = services.run_restore(job_id, on_progress=_progress_reporter(self, fractal))
    if job.status == job.Status.FAILED:
        raise JobFailed(job.error)
    return {"job_id": job_id, "status": job.status, "rows": job.rows_restored}


@shared_task(name="strix.reap_stale_jobs")
def reap_stale_jobs() -> list[str]:
    # Searches ride on the same 5-minute pass: stalled ones fail, results past 24 hours are removed.
    return services.reap_stale_jobs() + search_jobs.reap_stale_searches() + search_jobs.expire_searches()


@shared_task(name="strix.scan_archive_schedules")
def scan_archive_schedules() -> list[str]:
    return [str(archive.id) for archive in services.scan_schedules()]


@shared_task(name="strix.enforce_retention")
def enforce_retention() -> dict:
    return {
        r.fractal: {"deleted_days": r.deleted_days, "kept_days": r.kept_days, "held_days": r.held_days}
        for r in enforce_all()
    }


@shared_task(name=VERIFY_TASK)
def verify_archive(archive_id: str, fractal: str | None = None) -> dict:
    archive = run_verify(archive_id)
    return {"archive_id": archive_id, "verification": archive.verification, "damage": archive.damage}


@signals.task_revoked.connect
def _cancel_the_job_of_a_revoked_task(sender=None, request=None, terminated=False, **kwargs):
    """Flower's Terminate (and Revoke) cancel the job, as its Cancel button does."""
    if request is not None and sender is not None and sender.name in (ARCHIVE_TASK, RESTORE_TASK):
        cancel_revoked(request.id, terminated)


@shared_task(name=SEARCH_TASK, acks_late=True)
def search_archive_task(search_id: str, fractal: str | None = None) -> dict:
    search = search_jobs.run_search(search_id)
    if search is None:
        return {"search_id": search_id, "status": "deleted with its archive"}
    return {"search_id": search_id, "status": search.status, "matches": search.matches}


@shared_task(name="strix.check_alerts")
def check_alerts() -> list[str]:
    return alerts.check_alerts()
