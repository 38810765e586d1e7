"""Holds against deletion: a restore's hold on its time range in the target (against retention), and
a legal hold on a whole fractal (against retention, Maximum Archives pruning and archive deletion)."""

from __future__ import annotations

from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from archives.models import ArchiveEvent, LegalHold, RestoreJob
from archives.services.errors import ArchiveError, require_admin
from archives.services.history import record_event, who
from strix.fractals.models import Fractal


class LegalHoldActive(ArchiveError):
    """Something would delete logs or archives of a fractal under legal hold."""


def active_legal_hold(fractal_id) -> LegalHold | None:
    return LegalHold.objects.filter(fractal_id=fractal_id, released_at__isnull=True).first()


def refuse_under_legal_hold(fractal_id, doing: str) -> None:
    hold = active_legal_hold(fractal_id)
    if hold is not None:
        raise LegalHoldActive(
            f"{doing} refused: fractal {hold.fractal.name} is under legal hold since "
            f"{hold.set_at:%Y-%m-%d %H:%M} UTC, set by {who(hold.set_by)} ({hold.reason}); release the hold first."
        )


MAX_REASON = 1000


def _checked_reason(reason: str, what: str) -> str:
    if not reason.strip():
        raise ArchiveError(f"say why the legal hold is {what} (a case number, a request…).")
    if len(reason) > MAX_REASON:
        raise ArchiveError(f"the reason is {len(reason):,} characters long; at most {MAX_REASON:,} are kept.")
    return reason.strip()


def set_legal_hold(user, fractal: Fractal, reason: str) -> LegalHold:
    require_admin(user, fractal)
    reason = _checked_reason(reason, "set")
    try:
        with transaction.atomic():
            hold = LegalHold.objects.create(fractal=fractal, reason=reason.strip(), set_by=user)
    except IntegrityError:
        raise ArchiveError(f"fractal {fractal.name} is already under legal hold.") from None
    record_event(fractal.pk, ArchiveEvent.Action.HOLD, "legal hold set", reason.strip(), user)
    return hold


def release_legal_hold(user, fractal: Fractal, reason: str) -> None:
    require_admin(user, fractal)
    reason = _checked_reason(reason, "released")
    released = LegalHold.objects.filter(fractal=fractal, released_at__isnull=True).update(
        released_at=timezone.now(), released_by=user, release_reason=reason.strip()
    )
    if not released:
        raise ArchiveError(f"fractal {fractal.name} has no legal hold to release.")
    record_event(fractal.pk, ArchiveEvent.Action.HOLD, "legal hold released", reason.strip(), user)


def active_restore_holds(fractal: Fractal, now=None):
    """The restores whose hold on their time range in ``fractal`` is in force."""
    now = now or timezone.now()
    holds = RestoreJob.objects.filter(
        target=fractal, status=RestoreJob.Status.COMPLETED, hold_start__isnull=False, hold_released_at__isnull=True
    )
    return holds.filter(hold_days__isnull=True) | holds.filter(hold_until__gt=now)


def hold_until_for(job: RestoreJob):
    """When a restore completing now stops holding its range: its hold days on, or never (None)."""
    return None if job.hold_days is None else timezone.now() + timedelta(days=job.hold_days)


def release_restore_hold(user, job: RestoreJob) -> None:
    require_admin(user, job.target)
    if not RestoreJob.objects.filter(pk=job.pk, hold_released_at__isnull=True).update(hold_released_at=timezone.now()):
        raise ArchiveError(f"the hold of restore {job.short_id} was already released.")
    detail = f"restore {job.short_id}: {job.hold_start:%Y-%m-%d %H:%M} – {job.hold_end:%Y-%m-%d %H:%M} UTC released"
    record_event(job.target_id, ArchiveEvent.Action.HOLD, "hold released", detail, user)
