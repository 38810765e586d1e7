"""Scheduled archives (daily, weekly, monthly per fractal).

A period is a calendar period in UTC: a day, an ISO week (from Monday), a month. The rule, in one
sentence (the Manage tab says it too): one scheduled archive per period — made at the first scan of
the period, retried an hour after a failure, and not made again if the user deletes it. So a fractal
is due when no scheduled archive of the current period is completed or under way, none failed within
the hour, and none was made this period and then deleted.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db.models import Exists, OuterRef, Q
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from archives.models import Archive, ArchiveEvent
from archives.services.create import request_archive
from archives.services.errors import ArchiveError, FractalBusy, require_admin
from archives.services.history import record_event
from strix.fractals.models import ArchiveSchedule, Fractal

log = logging.getLogger(__name__)

RETRY_FAILED_AFTER = timedelta(hours=1)


def period_start(schedule: str, now: datetime) -> datetime:
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if schedule == ArchiveSchedule.DAILY:
        return day
    if schedule == ArchiveSchedule.WEEKLY:
        return day - timedelta(days=day.weekday())
    if schedule == ArchiveSchedule.MONTHLY:
        return day.replace(day=1)
    raise ValueError(f"no period for schedule {schedule!r}")


def due_fractals(now: datetime, fractals=None):
    """The fractals whose scheduled archive is due: one query per frequency, however many fractals."""
    fractals = Fractal.objects.all() if fractals is None else fractals
    due = []
    for schedule in (ArchiveSchedule.DAILY, ArchiveSchedule.WEEKLY, ArchiveSchedule.MONTHLY):
        this_period = Archive.objects.filter(
            fractal=OuterRef("pk"), kind=Archive.Kind.SCHEDULED, created_at__gte=period_start(schedule, now)
        )
        start = period_start(schedule, now)
        due += list(
            fractals.filter(archive_schedule=schedule)
            # a scheduled archive of this period is completed or under way …
            .exclude(Exists(this_period.exclude(status=Archive.Status.FAILED)))
            # … or one failed within the hour: retried later, not every five minutes
            .exclude(Exists(this_period.filter(created_at__gte=now - RETRY_FAILED_AFTER)))
            # … or this period's was made and then deleted: one per period (a failed one is retried)
            .exclude(Q(last_scheduled_at__gte=start) & ~Exists(this_period.filter(status=Archive.Status.FAILED)))
            .order_by("name")
        )
    return due


def is_due(fractal: Fractal, now: datetime) -> bool:
    return bool(due_fractals(now, Fractal.objects.filter(pk=fractal.pk)))


def scan_schedules(now: datetime | None = None) -> list[Archive]:
    """Queue the scheduled archives that are due (run by celery-beat every five minutes)."""
    now = now or timezone.now()
    started = []
    for fractal in due_fractals(now):
        try:
            started.append(request_archive(None, fractal, kind=Archive.Kind.SCHEDULED))
            Fractal.objects.filter(pk=fractal.pk).update(last_scheduled_at=now)
        except FractalBusy:
            log.info("scheduled archive of %s postponed: the fractal is busy", fractal.name)
    return started


def next_period_start(schedule: str, now: datetime) -> datetime:
    start = period_start(schedule, now)
    if schedule == ArchiveSchedule.DAILY:
        return start + timedelta(days=1)
    if schedule == ArchiveSchedule.WEEKLY:
        return start + timedelta(days=7)
    return (start + timedelta(days=32)).replace(day=1)


SCAN_EVERY = timedelta(minutes=5)  # settings.CELERY_BEAT_SCHEDULE["scan-archive-schedules"]


def next_scan(now: datetime) -> datetime:
    """When celery-beat's schedule scan runs next: five minutes after its last run, never before now."""
    last = PeriodicTask.objects.filter(name="scan-archive-schedules").values_list("last_run_at", flat=True).first()
    upcoming = (last + SCAN_EVERY) if last else now + SCAN_EVERY
    while upcoming < now:
        upcoming += SCAN_EVERY
    return upcoming


def next_due(fractal: Fractal, now: datetime | None = None) -> datetime | None:
    """When the next scheduled archive of ``fractal`` is made: the first scan at or after the time it is
    due (now, or the start of the next period) — never a time already past."""
    now = now or timezone.now()
    if fractal.archive_schedule == ArchiveSchedule.NEVER:
        return None
    due_at = now if is_due(fractal, now) else next_period_start(fractal.archive_schedule, now)
    return next_scan(due_at)


def set_schedule(user, fractal: Fractal, schedule: str, max_archives: int | None) -> None:
    """Save the Archive Schedule section (the caller has shown what the next archive will delete under
    the new Maximum Archives, delete.archives_to_prune, and been confirmed)."""
    require_admin(user, fractal)
    if schedule not in ArchiveSchedule.values:
        raise ArchiveError(f"unknown frequency {schedule!r}; choose Never, Daily, Weekly or Monthly.")
    if max_archives is not None and max_archives < 1:
        raise ArchiveError("Maximum Archives must be at least 1, or empty to keep all.")
    before = (fractal.get_archive_schedule_display(), fractal.max_archives)
    fractal.archive_schedule, fractal.max_archives = schedule, max_archives
    fractal.save(update_fields=["archive_schedule", "max_archives"])
    after = (fractal.get_archive_schedule_display(), fractal.max_archives)
    detail = f"{before[0]}, max {before[1] or 'all'} → {after[0]}, max {after[1] or 'all'}"
    record_event(fractal.pk, ArchiveEvent.Action.SCHEDULE, "saved", detail, user)
