"""What a restore will do, computed before the user confirms it (the Restore step's summary)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from archives.models import Archive
from archives.services.options import RestoreOptions
from archives.services.search import FilterSample, sample_filter
from strix import logstore
from strix.fractals.models import Fractal


@dataclass(frozen=True)
class DayEstimate:
    day: str
    rows: int
    bytes: int
    whole: bool  # False: part of the day, estimated in proportion to the time taken


@dataclass(frozen=True)
class RestorePlan:
    archive: Archive
    target: Fractal
    clear_existing: bool
    delete_rows: int
    delete_first: datetime | None
    delete_last: datetime | None
    options: RestoreOptions = field(default_factory=RestoreOptions)
    filter_sample: FilterSample | None = None  # with a filter: its share of the range, from a sample

    @property
    def per_day(self) -> list[DayEstimate]:
        """Rows and bytes per UTC day the restore takes, from the archive's record (no file is read)."""
        start, end = self.options.start, self.options.end
        days = []
        for day, (rows, size) in sorted(self.archive.day_rows.items()):
            day_start = datetime.fromisoformat(day).replace(tzinfo=UTC)
            day_end = day_start + timedelta(days=1)
            lo, hi = max(day_start, start or day_start), min(day_end, end or day_end)
            if lo >= hi:
                continue
            share = (hi - lo) / (day_end - day_start)
            days.append(DayEstimate(day, round(rows * share), round(size * share), share == 1))
        return days

    @property
    def exact(self) -> bool:
        """The estimate is the count the restore will insert (before removing rows already present)."""
        return bool(self.archive.day_rows) and not self.options.filters and all(d.whole for d in self.per_day)

    @property
    def range_rows(self) -> int:
        """Rows of the time range (all of them when there is none), from the record."""
        if not (self.options.start or self.options.end) or not self.archive.day_rows:
            return self.archive.row_count or 0  # an archive older than per-day records: at most this
        return sum(d.rows for d in self.per_day)

    @property
    def insert_rows(self) -> int:
        if self.filter_sample is not None:
            return round(self.range_rows * self.filter_sample.share)
        return self.range_rows

    @property
    def needs_typed_name(self) -> bool:
        """Replacing the logs of a non-empty fractal other than the archive's own: type its name first."""
        return self.clear_existing and self.delete_rows > 0 and self.target.pk != self.archive.fractal_id

    def summary(self) -> str:
        archive = self.archive
        first = max(filter(None, [archive.time_start, self.options.start]), default=None)
        last = min(filter(None, [archive.time_end, self.options.end]), default=None)
        quantity = (
            f"{self.insert_rows:,} rows"
            if self.exact or not self.options.narrows
            else f"about {self.insert_rows:,} rows"
        )
        narrowed = ""
        if self.filter_sample is not None:
            sample = self.filter_sample
            narrowed = (
                f" matching the filter (estimated from a sample: {sample.matched:,} of {sample.sampled:,} rows "
                f"matched, of {self.range_rows:,} in the range)"
            )
        inserted = (
            f"insert {quantity}{narrowed} ({_range(first, last)}) from archive "
            f"{archive.short_id} made on {archive.created_at:%Y-%m-%d %H:%M:%S} UTC"
        )
        if not self.clear_existing or not self.delete_rows:
            kept = f"keep its {self.delete_rows:,} rows and " if self.delete_rows else ""
            return f"Will {kept}{inserted} into fractal {self.target.name}."
        deleted = f"delete {self.delete_rows:,} rows ({_range(self.delete_first, self.delete_last)})"
        if self.options.has_range:
            cleared = f"in {self.options.describe_range()}, keeping its rows outside that range"
            return f"Will {deleted} of fractal {self.target.name} {cleared}, then {inserted}."
        return f"Will {deleted} of fractal {self.target.name}, then {inserted}."


def _range(first: datetime | None, last: datetime | None) -> str:
    if first is None:
        return "no rows"
    return f"{first:%Y-%m-%d %H:%M:%S} – {last:%Y-%m-%d %H:%M:%S} UTC"


def plan_restore(
    archive: Archive, target: Fractal, clear_existing: bool, options: RestoreOptions | None = None
) -> RestorePlan:
    options = options or RestoreOptions()
    options.require_within(archive)
    # A time range replaces only that range of the target; a whole archive replaces everything.
    count, first, last = logstore.fractal_span(str(target.pk), options.start, options.end)
    sample = sample_filter(archive, options) if options.filters else None
    return RestorePlan(archive, target, clear_existing, count, first, last, options, sample)
