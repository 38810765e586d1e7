"""Cancelling a running archive or restore: from its row in the Manage tab, or by Flower's Terminate.

A pending job ends at once. A running one is asked to stop: its heartbeat reads the request and the
worker stops at its next block, ending "Cancelled" with no partial file, no staging table and the
target untouched. A restore whose rows were already verified is being promoted and finishes: it can
no longer be cancelled. A job whose worker was killed by Terminate is taken over like a dead worker's.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from archives.models import Archive, ArchiveEvent, RestoreJob
from archives.services import promote
from archives.services.claims import Claim, release_claim
from archives.services.errors import ArchiveError, require_admin
from archives.services.history import record_event, who
from archives.services.reaper import end_terminated_job


class NotCancellable(ArchiveError):
    pass


def job_fractal(job):
    return job.fractal if isinstance(job, Archive) else job.target


def cancel_job(user, job) -> str:
    """Cancel ``job`` (an Archive or a RestoreJob); returns what happened, for the user."""
    fractal = job_fractal(job)
    if user is not None:
        require_admin(user, fractal)
    job.refresh_from_db()
    model, name = type(job), "archive" if isinstance(job, Archive) else "restore"
    reason = f"cancelled by {who(user)}"
    if job.status == model.Status.PENDING:
        with transaction.atomic():
            ended = model.objects.filter(pk=job.pk, status=model.Status.PENDING, fence=job.fence).update(
                status=model.Status.CANCELLED,
                error=reason,
                finished_at=timezone.now(),
                cancel_requested_at=timezone.now(),
            )
            if ended:
                release_claim(Claim.of(job), job.lock_token)
        if ended:
            record_event(
                fractal.pk, ArchiveEvent.Action.CANCEL, "cancelled", f"{name} {job.short_id} before it started", user
            )
            return f"The {name} was cancelled before it started."
        job.refresh_from_db()
    if job.status not in model.ACTIVE:
        raise NotCancellable(f"the {name} had already ended ({job.get_status_display()}); nothing was cancelled.")
    if isinstance(job, RestoreJob) and promote.is_committed(job):
        raise NotCancellable(
            "the restore's rows were verified and are being promoted into the target; it can no longer be cancelled."
        )
    if not model.objects.filter(pk=job.pk, status__in=model.ACTIVE).update(cancel_requested_at=timezone.now()):
        job.refresh_from_db()
        raise NotCancellable(f"the {name} had already ended ({job.get_status_display()}); nothing was cancelled.")
    record_event(fractal.pk, ArchiveEvent.Action.CANCEL, "requested", f"{name} {job.short_id}", user)
    return f"Cancelling the {name}: it stops at its next block (within a second or two)."


def cancel_revoked(job_id, terminated: bool) -> None:
    """Celery revoked the task of job ``job_id`` (Flower's Revoke or Terminate): cancel the job."""
    job = Archive.objects.filter(pk=job_id).first() or RestoreJob.objects.filter(pk=job_id).first()
    if job is None or not job.is_active:
        return
    if terminated and not (isinstance(job, RestoreJob) and promote.is_committed(job)):
        end_terminated_job(job, "its task was terminated in Flower")
        return
    try:
        cancel_job(None, job)
    except NotCancellable:
        pass  # a restore being promoted finishes
