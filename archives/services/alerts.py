"""Alerts when protection silently stops: by webhook (JSON, Slack-compatible ``text``) and/or e-mail.

Every 5 minutes (celery-beat) the conditions are evaluated; each condition that holds is an
*incident* with a stable key. An incident is announced once, when it opens; it closes by itself when
the condition no longer holds, and a later recurrence is a new incident. Conditions:

- a failed archive or restore, or a failed retention run (one incident each, for a day);
- no completed PostgreSQL backup within STRIX_BACKUP_MAX_AGE_HOURS (26);
- a scheduled archive overdue by one period;
- retention keeping days because no archive holds them;
- an archive whose stored file is damaged (found by Verify, or by an archive copying days from it);
- archive records and stored files that disagree (see reconcile.py).

A backup run that fails is announced by the backup command itself, at once (the database may be the
thing that is down). Messages name the fractal, job or backup; never a key, password or URL secret.
"""

from __future__ import annotations

import json
import logging
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db.models import Max, Q
from django.utils import timezone

from archives.models import AlertIncident, Archive, ArchiveEvent, RestoreJob
from archives.services.reconcile import find_drift
from archives.services.schedule import period_start
from backups.naming import backup_time
from strix.fractals.models import ArchiveSchedule, Fractal
from strix.storage import get_store

log = logging.getLogger(__name__)

RECENT = timedelta(days=1)
WEBHOOK_TIMEOUT = 5.0


@dataclass(frozen=True)
class Condition:
    key: str  # stable while the condition lasts: the incident's identity
    kind: str
    message: str


def _failed_jobs(now: datetime) -> list[Condition]:
    since = now - RECENT
    failures = (
        (Archive.objects.filter(status=Archive.Status.FAILED, finished_at__gte=since).select_related("fractal"),
         "archive failed", lambda a: f"Archive {a.short_id} of fractal {a.fractal.name} failed: {a.error}"),
        (RestoreJob.objects.filter(status=RestoreJob.Status.FAILED, finished_at__gte=since).select_related("target"),
         "restore failed", lambda j: f"Restore {j.short_id} into fractal {j.target.name} failed: {j.error}"),
        (ArchiveEvent.objects.filter(action=ArchiveEvent.Action.RETENTION, outcome="failed", at__gte=since)
         .select_related("fractal"),
         "retention failed", lambda e: f"Retention of fractal {e.fractal.name} failed: {e.detail}"),
    )  # fmt: skip
    return [
        Condition(f"{kind.replace(' ', '-')}:{record.pk}", kind, describe(record))
        for records, kind, describe in failures
        for record in records
    ]


def _stale_backup(now: datetime) -> list[Condition]:
    hours = settings.STRIX_BACKUP_MAX_AGE_HOURS
    times = [t for f in get_store("backups").list() if (t := backup_time(f.name)) is not None]
    newest = max(times, default=None)
    if newest is not None and now - newest <= timedelta(hours=hours):
        return []
    seen = f"the newest is from {newest:%Y-%m-%d %H:%M} UTC" if newest else "there is none"
    return [
        Condition(
            "backup-stale",
            "backup stale",
            f"No PostgreSQL backup completed within {hours} hours ({seen}); check the backup cron job "
            "(strix-setup --backup).",
        )
    ]


def _overdue_archives(now: datetime) -> list[Condition]:
    found = []
    scheduled = Fractal.objects.exclude(archive_schedule=ArchiveSchedule.NEVER).annotate(
        last_archive=Max("archives__created_at", filter=Q(archives__status=Archive.Status.COMPLETED))
    )
    for fractal in scheduled:
        previous = period_start(fractal.archive_schedule, period_start(fractal.archive_schedule, now) - timedelta(1e-6))
        if fractal.created_at >= previous or (fractal.last_archive and fractal.last_archive >= previous):
            continue
        found.append(
            Condition(
                f"archive-overdue:{fractal.pk}",
                "archive overdue",
                f"Fractal {fractal.name} has had no completed archive since {previous:%Y-%m-%d} "
                f"({fractal.get_archive_schedule_display()} schedule): is a worker and celery-beat running?",
            )
        )
    return found


def _retention_keeping_days(now: datetime) -> list[Condition]:
    found = []
    latest = (
        ArchiveEvent.objects.filter(action=ArchiveEvent.Action.RETENTION)
        .values("fractal")
        .annotate(last=Max("at"))
        .values_list("fractal", "last")
    )
    last_by_fractal = dict(latest)
    events = ArchiveEvent.objects.filter(
        action=ArchiveEvent.Action.RETENTION, outcome="kept days", at__in=list(last_by_fractal.values())
    ).select_related("fractal")
    for event in events:
        if last_by_fractal.get(event.fractal_id) != event.at:
            continue
        found.append(
            Condition(
                f"retention-kept:{event.fractal_id}",
                "retention kept days",
                f"Retention of fractal {event.fractal.name} kept old days because no archive holds them: "
                f"{event.detail}. Create an archive, or check the schedule.",
            )
        )
    return found


def _damaged_archives(now: datetime) -> list[Condition]:
    """Archives whose stored file failed authentication (Verify, or a synthetic archive copying from it)."""
    damaged = Archive.objects.filter(
        status=Archive.Status.COMPLETED, verification=Archive.Verification.DAMAGED
    ).select_related("fractal")
    return [
        Condition(
            f"archive-damaged:{archive.pk}",
            "archive damaged",
            f"Archive {archive.short_id} of fractal {archive.fractal.name} is damaged and cannot be restored: "
            f"{archive.damage[:500]}. Put back its file from a copy, or delete the archive and create a new one.",
        )
        for archive in damaged
    ]


def _drift(now: datetime) -> list[Condition]:
    drift = find_drift()
    if not drift.any:
        return []
    lines = drift.lines()
    return [
        Condition(
            "reconcile-drift",
            "reconcile drift",
            f"{len(lines)} difference(s) between archive records and stored files, e.g. {lines[0]}. "
            "Run: manage.py archives reconcile",
        )
    ]


CHECKS = (_failed_jobs, _stale_backup, _overdue_archives, _retention_keeping_days, _damaged_archives, _drift)


def current_conditions(now: datetime | None = None) -> list[Condition]:
    now = now or timezone.now()
    found = []
    for check in CHECKS:
        try:
            found.extend(check(now))
        except Exception as e:  # a check that cannot run is itself worth knowing about
            log.exception("alert check %s failed", check.__name__)
            found.append(Condition(f"check-failed:{check.__name__}", "alert check failed", f"{check.__name__}: {e}"))
    return found


def check_alerts(now: datetime | None = None) -> list[str]:
    """Open (and announce) incidents for new conditions, close those that ended; returns the keys announced."""
    now = now or timezone.now()
    conditions = {c.key: c for c in current_conditions(now)}
    open_incidents = {i.key: i for i in AlertIncident.objects.filter(resolved_at=None)}
    announced = []
    for key, condition in conditions.items():
        if key in open_incidents:
            AlertIncident.objects.filter(pk=open_incidents[key].pk).update(last_seen_at=now)
            continue
        incident = AlertIncident.objects.create(
            key=key, kind=condition.kind, message=condition.message, opened_at=now, last_seen_at=now
        )
        if notify(condition.kind, condition.message):
            AlertIncident.objects.filter(pk=incident.pk).update(notified_at=timezone.now())
        announced.append(key)
    ended = [incident.pk for key, incident in open_incidents.items() if key not in conditions]
    AlertIncident.objects.filter(pk__in=ended).update(resolved_at=now)
    return announced


def notify(kind: str, message: str) -> bool:
    """Send one alert by every configured channel; True if at least one accepted it."""
    text = f"[Strix Data Protection] {kind}: {message}"
    sent = False
    url = settings.STRIX_ALERT_WEBHOOK_URL
    if url:
        body = json.dumps({"text": text, "kind": kind, "message": message}).encode()
        request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT) as response:
                sent = 200 <= response.status < 300
        except OSError as e:
            log.warning("alert webhook failed (%s); the alert was: %s", e.__class__.__name__, text)
    if settings.STRIX_ALERT_EMAILS:
        try:
            send_mail(f"Strix Data Protection: {kind}", text, None, settings.STRIX_ALERT_EMAILS)
            sent = True
        except Exception as e:
            log.warning("alert e-mail failed (%s); the alert was: %s", e, text)
    if not url and not settings.STRIX_ALERT_EMAILS:
        log.warning("%s (no STRIX_ALERT_WEBHOOK_URL or STRIX_ALERT_EMAILS is set)", text)
    return sent
