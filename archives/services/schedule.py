"""Scheduled archives (daily, weekly, monthly per fractal).

A period is a calendar period in UTC: a day, an ISO week (from Monday), a month. A fractal is due when
no scheduled archive of the current period is completed or under way; a failed one is retried after
an hour, so that a broken store does not start a new attempt every five minutes.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.utils import timezone

from archives.models import Archive
from archives.services.create import request_archive
from archives.services.errors import FractalBusy
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


def is_due(fractal: Fractal, now: datetime) -> bool:
    if fractal.archive_schedule == ArchiveSchedule.NEVER:
        return False
    this_period = Archive.objects.filter(
        fractal=fractal, kind=Archive.Kind.SCHEDULED, created_at__gte=period_start(fractal.archive_schedule, now)
    )
    if this_period.exclude(status=Archive.Status.FAILED).exists():
        return False
    return not this_period.filter(created_at__gte=now - RETRY_FAILED_AFTER).exists()


def scan_schedules(now: datetime | None = None) -> list[Archive]:
    """Queue the scheduled archives that are due (run by celery-beat every five minutes)."""
    now = now or timezone.now()
    started = []
    for fractal in Fractal.objects.exclude(archive_schedule=ArchiveSchedule.NEVER):
        if not is_due(fractal, now):
            continue
        try:
            started.append(request_archive(None, fractal, kind=Archive.Kind.SCHEDULED))
        except FractalBusy:
            log.info("scheduled archive of %s postponed: the fractal is busy", fractal.name)
    return started
