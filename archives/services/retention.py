"""Retention: delete a fractal's logs older than ``retention_days``, but never what no archive holds.

A whole UTC day older than the cutoff is deleted only if some completed archive recorded that day's
rows (count and sum of row hashes, taken before the day was streamed into it) and the log store still
holds exactly those rows. A day that received rows since (late arrivals, restores), or that no archive
covered whole, is kept and reported, to be deleted after a later archive covers it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.utils import timezone

from archives.models import Archive, RestoreJob
from archives.services.claims import maintenance_claim, require
from archives.services.errors import FractalBusy
from strix import logstore
from strix.fractals.models import Fractal

log = logging.getLogger(__name__)

INGEST_MARGIN = timedelta(minutes=10)


@dataclass
class RetentionResult:
    fractal: str
    deleted_days: list[str] = field(default_factory=list)
    kept_days: list[str] = field(default_factory=list)  # older than the cutoff, but not (fully) archived
    held_days: list[str] = field(default_factory=list)  # older than the cutoff, but restored and held


def _archived_checksums(fractal: Fractal) -> dict[str, set[tuple[int, int]]]:
    recorded: dict[str, set[tuple[int, int]]] = {}
    for checksums in Archive.objects.filter(fractal=fractal, status=Archive.Status.COMPLETED).values_list(
        "day_checksums", flat=True
    ):
        for day, (count, total) in checksums.items():
            recorded.setdefault(day, set()).add((int(count), int(total)))
    return recorded


def _restore_holds(fractal: Fractal, now: datetime) -> list[tuple[datetime, datetime]]:
    """Time ranges restored into ``fractal`` whose hold has not expired (STRIX_RESTORE_HOLD_DAYS)."""
    holds = RestoreJob.objects.filter(
        target=fractal, status=RestoreJob.Status.COMPLETED, hold_until__gt=now, hold_start__isnull=False
    )
    return list(holds.values_list("hold_start", "hold_end"))


def _is_held(holds: list[tuple[datetime, datetime]], start: datetime, end: datetime) -> bool:
    return any(held_start < end and held_end >= start for held_start, held_end in holds)


def enforce_retention(fractal: Fractal, now: datetime | None = None) -> RetentionResult:
    """Delete the archived whole days older than the fractal's retention window."""
    result = RetentionResult(fractal.name)
    now = now or timezone.now()
    cutoff = fractal.retention_cutoff(now)
    # Rows may still arrive with old timestamps while this runs; a row ingested lately is never deleted
    # by this run, whatever the checks below saw (the day is then kept whole next time).
    ingested_before = timezone.now() - INGEST_MARGIN
    if cutoff is None:
        return result
    with maintenance_claim(fractal) as claim:
        archived = _archived_checksums(fractal)
        holds = _restore_holds(fractal, now)
        fractal_id = str(fractal.id)
        deletable: list[tuple[datetime, datetime]] = []
        for window_start, window_end in logstore.day_windows(fractal_id):
            if window_end > cutoff:
                break  # only whole days entirely older than the cutoff
            day = window_start.date().isoformat()
            if _is_held(holds, window_start, window_end):
                result.held_days.append(day)
                continue
            current = logstore.window_checksum(fractal_id, window_start, window_end)
            if current[0] == 0:
                continue  # nothing that day
            if current in archived.get(day, ()):
                deletable.append((window_start, window_end))
                result.deleted_days.append(day)
            else:
                result.kept_days.append(day)
        # One mutation per run of consecutive days: each mutation rewrites the parts it touches.
        for start, end in _runs(deletable):
            require(claim)
            logstore.delete_window(fractal_id, claim.fence, start, end, ingested_before)
    if result.kept_days:
        log.warning(
            "retention kept %d day(s) of %s older than %d days because no archive holds them: %s",
            len(result.kept_days), fractal.name, fractal.retention_days, ", ".join(result.kept_days),
        )  # fmt: skip
    return result


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
    return results
