"""Handing a job to the Celery workers, by task name: services never import task objects (edges)."""

from celery import current_app
from django.conf import settings
from django.db import transaction

ARCHIVE_TASK = "strix.archive_fractal"
RESTORE_TASK = "strix.restore_archive"
VERIFY_TASK = "strix.verify_archive"
SEARCH_TASK = "strix.search_archive"


def job_queue() -> str:
    """Archives, restores and verifies (STRIX_CELERY_QUEUE)."""
    return settings.CELERY_TASK_DEFAULT_QUEUE


def search_queue() -> str:
    """Searches: a queue of their own, so that many of them never hold an archive back. (The third queue,
    maintenance, is named in settings.CELERY_BEAT_SCHEDULE: only beat sends to it.)"""
    return f"{settings.CELERY_TASK_DEFAULT_QUEUE}.searches"


def enqueue_after_commit(task_name: str, job_id, fractal_name: str) -> None:
    """Queue ``task_name`` for the job once the transaction that created it commits.

    The task id is the job id, so that Flower and ``AsyncResult`` find a job by its record; the
    fractal's name rides along so that Flower's task list says which fractal each job is for.
    """
    job_id, queue = str(job_id), search_queue() if task_name == SEARCH_TASK else job_queue()
    transaction.on_commit(
        lambda: current_app.send_task(
            task_name, args=[job_id], kwargs={"fractal": fractal_name}, task_id=job_id, queue=queue
        )
    )
