"""Handing a job to the Celery workers, by task name: services never import task objects (edges)."""

from celery import current_app
from django.db import transaction

ARCHIVE_TASK = "strix.archive_fractal"
RESTORE_TASK = "strix.restore_archive"


def enqueue_after_commit(task_name: str, job_id) -> None:
    """Queue ``task_name`` for the job once the transaction that created it commits.

    The task id is the job id, so that Flower and ``AsyncResult`` find a job by its record.
    """
    job_id = str(job_id)
    transaction.on_commit(lambda: current_app.send_task(task_name, args=[job_id], task_id=job_id))
