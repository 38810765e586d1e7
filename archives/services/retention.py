"""Retention, as the product documentation describes it.

Every fractal with ``retention_days`` loses its logs older than that window, a whole UTC day at a time:

- **No archive schedule** (Never): whole days older than the window are deleted.
- **With an archive schedule**: the window gets a **1-day buffer**, a fractal with an archive or
  restore running is skipped (it waits for the next run), and a day is deleted only if a completed
  archive recorded that day's rows (count and sum of row hashes, taken before the day was streamed
  into it) and the log store still holds exactly those rows, so that nothing is deleted that no
  archive holds. A day that received rows since, or that no archive covered whole, is kept and
  reported, to be deleted after a later archive covers it.

Either way, a time range restored into the fractal is held for ``STRIX_RESTORE_HOLD_DAYS`` and rows
ingested in the last ten minutes are never deleted. Each run is recorded in the fractal's history.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.utils import timezone

from archives.models import Archive, ArchiveEvent
from archives.services.claims import maintenance_claim, require
from archives.services.errors import FractalBusy
from archives.services.history import record_event
from archives.services.holds import active_legal_hold, active_restore_holds
from strix import logstore
from strix.fractals.models import ArchiveSchedule, Fractal

log = logging.getLogger(__name__)

INGEST_MARGIN = timedelta(minutes=10)
# With an archive schedule, retention waits one more day, so that the day is archived before it goes.
ARCHIVE_BUFFER = timedelta(days=1)


@dataclass
class RetentionResult:
    fractal: str
    deleted_days: list[str] = field(default_factory=list)
    kept_days: list[str] = field(default_factory=list)  # older than the cutoff, but not (fully) archived
    held_days: list[str] = field(default_factory=list)  # older than the cutoff, but restored and held
    legal_hold: bool = False


def _archived_checksums(fractal: Fractal) -> dict[str, set[tuple[int, int]]]:
    recorded: dict[str, set[tuple[int, int]]] = {}
    for checksums in Archive.objects.filter(fractal=fractal, status=Archive.Status.COMPLETED).values_list(
        "day_checksums", flat=True
    ):
        for day, (count, total) in checksums.items():
            recorded.setdefault(day, set()).add((int(count), int(total)))
    return recorded


def _restore_holds(fractal: Fractal, now: datetime) -> list[tuple[datetime, datetime]]:
    """Time ranges restored into ``fractal`` whose hold is in force (until its expiry or its release)."""
    return list(active_restore_holds(fractal, now).values_list("hold_start", "hold_end"))


def _is_held(holds: list[tuple[datetime, datetime]], start: datetime, end: datetime) -> bool:
    return any(held_start < end and held_end >= start for held_start, held_end in holds)


def enforce_retention(fractal: Fractal, now: datetime | None = None) -> RetentionResult:
    """Delete the whole days older than the fractal's retention window (see the module's rules)."""
    result = RetentionResult(fractal.name)
    now = now or timezone.now()
    cutoff = fractal.retention_cutoff(now)
    scheduled = fractal.archive_schedule != ArchiveSchedule.NEVER
    if cutoff is not None and scheduled:
        cutoff -= ARCHIVE_BUFFER
    if cutoff is not None and active_legal_hold(fractal.pk) is not None:
        result.legal_hold = True
        record_event(
            fractal.pk, ArchiveEvent.Action.RETENTION, "legal hold", "nothing deleted: the fractal is under legal hold"
        )
        return result
    # Rows may still arrive with old timestamps while this runs; a row ingested lately is never deleted
    # by this run, whatever the checks below saw (the day is then kept whole next time).
    ingested_before = timezone.now() - INGEST_MARGIN
    if cutoff is None:
        return result
    with maintenance_claim(fractal) as claim:
        fractal_id = str(fractal.id)
        # ClickHouse work in proportion to what is decided: one grouped count of the old days (the
        # timestamp column only), then row hashes only for the days an archive says it holds. A day no
        # archive recorded is kept without reading its rows.
        old_days = logstore.day_figures(fractal_id, _midnight(cutoff))  # whole days before the cutoff
        archived = _archived_checksums(fractal) if scheduled else {}
        holds = _restore_holds(fractal, now)
        deletable: list[str] = []
        to_verify: list[str] = []
        for day in sorted(old_days):
            start = _day_start(day)
            if _is_held(holds, start, start + timedelta(days=1)):
                result.held_days.append(day)
            elif not scheduled:
                deletable.append(day)
            elif day in archived:
                to_verify.append(day)
            else:
                result.kept_days.append(day)
        if to_verify:
            first, last = _day_start(to_verify[0]), _day_start(to_verify[-1]) + timedelta(days=1)
            current = logstore.day_figures(fractal_id, last, since=first, checksums=True)
            for day in to_verify:
                (deletable if current.get(day) in archived[day] else result.kept_days).append(day)
        result.deleted_days = sorted(deletable)
        result.kept_days.sort()
        windows = [(_day_start(day), _day_start(day) + timedelta(days=1)) for day in result.deleted_days]
        # One mutation per run of consecutive days: each mutation rewrites the parts it touches.
        for start, end in _runs(windows):
            require(claim)
            logstore.delete_window(fractal_id, claim.fence, start, end, ingested_before)
    _record(fractal, result)
    if result.kept_days:
        log.warning(
            "retention kept %d day(s) of %s older than %d days because no archive holds them: %s",
            len(result.kept_days), fractal.name, fractal.retention_days, ", ".join(result.kept_days),
        )  # fmt: skip
    return result


def _record(fractal: Fractal, result: RetentionResult) -> None:
    """One line of history per run, so that the Manage tab shows what retention did and why."""
    parts = [f"deleted {len(result.deleted_days)} day(s)"]
    if result.kept_days:
        parts.append(f"kept {len(result.kept_days)} day(s) no archive holds: {', '.join(result.kept_days)}")
    if result.held_days:
        parts.append(f"kept {len(result.held_days)} restored day(s) on hold")
    outcome = "kept days" if result.kept_days else "done"
    record_event(fractal.pk, ArchiveEvent.Action.RETENTION, outcome, "; ".join(parts))


def _midnight(value: datetime) -> datetime:
    return value.replace(hour=0, minute=0, second=0, microsecond=0)


def _day_start(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(tzinfo=UTC)


def _runs(windows: list[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    runs: list[tuple[datetime, datetime]] = []
    for start, end in windows:
        if runs and runs[-1][1] == start:
            runs[-1] = (runs[-1][0], end)
        else:
            runs.append((start, end))
    return runs


def enforce_all(now: datetime | None = None) -> list[RetentionResult]:
    """Run retention on every fractal with a policy; a busy fractal waits for the next run."""
    results = []
    for fractal in Fractal.objects.exclude(retention_days=None):
        try:
            results.append(enforce_retention(fractal, now))
        except FractalBusy:
            log.info("retention of %s postponed: the fractal is busy", fractal.name)
        except Exception as e:  # one fractal's failure (ClickHouse away…) must not stop the others' retention
            log.exception("retention of %s failed", fractal.name)
            record_event(fractal.pk, ArchiveEvent.Action.RETENTION, "failed", str(e) or e.__class__.__name__)
    return results
