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
from archives.services.claims import Claim, ClaimLost, lost, maintenance_claims
from archives.services.errors import FractalBusy
from archives.services.history import record_event
from archives.services.holds import active_legal_hold, active_restore_holds
from strix import failpoints, logstore
from strix.fractals.models import ArchiveSchedule, Fractal

log = logging.getLogger(__name__)

INGEST_MARGIN = timedelta(minutes=10)
# With an archive schedule, retention waits one more day, so that the day is archived before it goes.
ARCHIVE_BUFFER = timedelta(days=1)
# Fractals whose deletions share one mutation (and whose claims are held together while it runs).
DELETION_BATCH = 100
# Fenced deletions sent for a batch before the rows still there are left to the next run.
DELETE_ATTEMPTS = 2


@dataclass
class RetentionResult:
    fractal: str
    deleted_days: list[str] = field(default_factory=list)
    kept_days: list[str] = field(default_factory=list)  # older than the cutoff, but not (fully) archived
    held_days: list[str] = field(default_factory=list)  # older than the cutoff, but restored and held
    legal_hold: bool = False
    rows_left: int = 0  # rows of the deleted days not proved gone: the next run deletes them


def _archived_checksums(fractal: Fractal) -> dict[str, set[tuple[int, int]]]:
    recorded: dict[str, set[tuple[int, int]]] = {}
    for checksums in Archive.objects.filter(fractal=fractal, status=Archive.Status.COMPLETED).values_list(
        "day_checksums", flat=True
    ):
        for day, figures in checksums.items():  # [rows, sum of row hashes, (newer records) salted sum]
            recorded.setdefault(day, set()).add((int(figures[0]), int(figures[1])))
    return recorded


def _restore_holds(fractal: Fractal, now: datetime) -> list[tuple[datetime, datetime]]:
    """Time ranges restored into ``fractal`` whose hold is in force (until its expiry or its release)."""
    return list(active_restore_holds(fractal, now).values_list("hold_start", "hold_end"))


def _is_held(ranges: list[tuple[datetime, datetime]], start: datetime, end: datetime) -> bool:
    return any(held_start < end and held_end >= start for held_start, held_end in ranges)


@dataclass(eq=False)  # plans are told apart by identity
class _Plan:
    """What a run decides for one fractal; the deletions of a batch go to ClickHouse together."""

    fractal: Fractal
    result: RetentionResult
    cutoff: datetime | None = None  # whole days before this midnight are old, if any may go
    scheduled: bool = False
    claim: Claim | None = None
    deletion: logstore.Deletion | None = None


def enforce_retention(fractal: Fractal, now: datetime | None = None) -> RetentionResult:
    """Delete the whole days older than the fractal's retention window (see the module's rules).

    Raises :class:`FractalBusy` if an archive or restore holds the fractal, and any failure as it is."""
    return _enforce_batch([fractal], now or timezone.now(), isolate=False)[0]


def enforce_all(now: datetime | None = None, batch: int = DELETION_BATCH) -> list[RetentionResult]:
    """Run retention on every fractal with a policy; a busy fractal waits for the next run, a failing
    one does not stop the others.

    Fractals go ``batch`` at a time: their old days are counted in one statement, their fences
    recorded in one insert and their deletions sent in one mutation, because each mutation rewrites
    the monthly parts that all fractals share."""
    now = now or timezone.now()
    fractals = list(Fractal.objects.exclude(retention_days=None).order_by("name"))
    results = []
    for first in range(0, len(fractals), batch):
        results += _enforce_batch(fractals[first : first + batch], now, isolate=True)
    return results


def _enforce_batch(fractals: list[Fractal], now: datetime, isolate: bool) -> list[RetentionResult]:
    plans = [_start(fractal, now) for fractal in fractals]
    # Rows may still arrive with old timestamps while this runs; a row ingested lately is never deleted
    # by this run, whatever the checks below saw (the day is then kept whole next time).
    ingested_before = timezone.now() - INGEST_MARGIN
    due = [plan for plan in plans if plan.cutoff is not None]
    with maintenance_claims([plan.fractal for plan in due]) as (claims, busy):  # held until the rows are gone
        if busy and not isolate:
            raise FractalBusy(busy[0].name)
        for fractal in busy:
            log.info("retention of %s postponed: the fractal is busy", fractal.name)
        plans = [plan for plan in plans if plan.cutoff is None or str(plan.fractal.id) in claims]
        claimed = [plan for plan in plans if plan.cutoff is not None]
        failed: list[_Plan] = []
        try:
            # ClickHouse work in proportion to what is decided: one grouped count of the batch's old days
            # (the timestamp column only), then row hashes only for the days an archive says it holds.
            old_days = logstore.days_before({str(plan.fractal.id): plan.cutoff for plan in claimed})
        except Exception as e:
            if not isolate:
                raise
            old_days, failed = {}, _fail(claimed, e)
        for plan in claimed:
            if plan in failed:
                continue
            plan.claim = claims[str(plan.fractal.id)]
            try:
                _decide(plan, old_days[str(plan.fractal.id)], now, ingested_before)
            except Exception as e:  # one fractal's failure must not stop the others' retention
                if not isolate:
                    raise
                failed += _fail([plan], e)
        try:
            _delete([plan for plan in plans if plan not in failed])
        except Exception as e:
            if not isolate:
                raise
            failed += _fail([plan for plan in plans if plan.deletion is not None and plan not in failed], e)
        # A run that paused past its claims' lapse was taken over: its fenced deletion matched nothing,
        # and what it decided is not this run's to report.
        taken_over = set(lost([plan.claim for plan in plans if plan.claim is not None and plan not in failed]))
        for plan in plans:
            if plan.claim in taken_over:
                log.warning(
                    "retention of %s stopped, writing nothing more: its claim was taken over", plan.fractal.name
                )
                failed.append(plan)
    return [_report(plan) for plan in plans if plan not in failed]


def _fail(plans: list[_Plan], error: Exception) -> list[_Plan]:
    for plan in plans:
        log.error("retention of %s failed: %s", plan.fractal.name, error)
        record_event(plan.fractal.pk, ArchiveEvent.Action.RETENTION, "failed", str(error) or error.__class__.__name__)
    return plans


def _start(fractal: Fractal, now: datetime) -> _Plan:
    """The fractal's cutoff, if it has one and no legal hold stops it (decided without ClickHouse)."""
    plan = _Plan(fractal, RetentionResult(fractal.name))
    cutoff = fractal.retention_cutoff(now)
    plan.scheduled = fractal.archive_schedule != ArchiveSchedule.NEVER
    if cutoff is not None and plan.scheduled:
        cutoff -= ARCHIVE_BUFFER
    if cutoff is not None and active_legal_hold(fractal.pk) is not None:
        plan.result.legal_hold = True
    elif cutoff is not None:
        plan.cutoff = _midnight(cutoff)
    return plan


def _decide(plan: _Plan, old_days: dict[str, int], now: datetime, ingested_before: datetime) -> None:
    """Which of the fractal's old days go (``plan.deletion``), are kept or are held (``plan.result``)."""
    fractal, result, fractal_id = plan.fractal, plan.result, str(plan.fractal.id)
    archived = _archived_checksums(fractal) if plan.scheduled else {}
    held_ranges = _restore_holds(fractal, now)
    deletable: list[str] = []
    to_verify: list[str] = []
    for day in sorted(old_days):
        start = _day_start(day)
        if _is_held(held_ranges, start, start + timedelta(days=1)):
            result.held_days.append(day)
        elif not plan.scheduled:
            deletable.append(day)
        elif day in archived:
            to_verify.append(day)
        else:
            result.kept_days.append(day)  # no archive recorded it: kept without reading its rows
    if to_verify:
        first, last = _day_start(to_verify[0]), _day_start(to_verify[-1]) + timedelta(days=1)
        current = logstore.day_figures(fractal_id, last, since=first, checksums=True)
        for day in to_verify:
            (deletable if current.get(day) in archived[day] else result.kept_days).append(day)
    result.deleted_days = sorted(deletable)
    result.kept_days.sort()
    if deletable:
        # One window per run of consecutive days: fewer conditions for ClickHouse to test per row.
        windows = _runs([(_day_start(day), _day_start(day) + timedelta(days=1)) for day in result.deleted_days])
        plan.deletion = logstore.Deletion(fractal_id, plan.claim.fence, tuple(windows), ingested_before)


def _delete(plans: list[_Plan]) -> None:
    """Send the planned deletions, all claims proven still held first, in as few mutations as fit;
    then prove the rows gone, sending again what a replica skipped (see promote._clear)."""
    deleting = [plan for plan in plans if plan.deletion is not None]
    taken_over = lost([plan.claim for plan in deleting])
    if taken_over:  # a claim lost meanwhile: this batch deletes nothing
        raise ClaimLost(f"the claim on fractal {taken_over[0].fractal_id} (fence {taken_over[0].fence}) was taken over")
    failpoints.reached("retention.before-delete")
    pending = deleting
    for attempt in range(DELETE_ATTEMPTS):
        if attempt and lost([plan.claim for plan in pending]):
            return  # taken over: our deletion rightly matched nothing (the caller reports nothing)
        logstore.delete_windows([plan.deletion for plan in pending])  # each fractal's share is fenced
        for plan in pending:
            plan.result.rows_left = logstore.rows_left(plan.deletion)
        pending = [plan for plan in pending if plan.result.rows_left]
        if not pending:
            return
    for plan in pending:
        log.warning("retention of %s left %d rows of its deleted days; the next run deletes them",
                    plan.fractal.name, plan.result.rows_left)  # fmt: skip


def _report(plan: _Plan) -> RetentionResult:
    fractal, result = plan.fractal, plan.result
    if result.legal_hold:
        record_event(
            fractal.pk, ArchiveEvent.Action.RETENTION, "legal hold", "nothing deleted: the fractal is under legal hold"
        )
    elif plan.cutoff is not None:
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
    if result.rows_left:
        parts.append(f"{result.rows_left:,} row(s) of those days not yet deleted; the next run retries")
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
