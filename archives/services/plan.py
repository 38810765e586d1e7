"""What a restore will do, computed before the user confirms it (the Restore step's summary)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from archives.models import Archive
from strix import logstore
from strix.fractals.models import Fractal


@dataclass(frozen=True)
class RestorePlan:
    archive: Archive
    target: Fractal
    clear_existing: bool
    delete_rows: int
    delete_first: datetime | None
    delete_last: datetime | None

    @property
    def insert_rows(self) -> int:
        return self.archive.row_count or 0

    @property
    def needs_typed_name(self) -> bool:
        """Replacing the logs of a non-empty fractal other than the archive's own: type its name first."""
        return self.clear_existing and self.delete_rows > 0 and self.target.pk != self.archive.fractal_id

    def summary(self) -> str:
        archive = self.archive
        inserted = (
            f"insert {self.insert_rows:,} rows ({_range(archive.time_start, archive.time_end)}) from archive "
            f"{archive.short_id} made on {archive.created_at:%Y-%m-%d %H:%M:%S} UTC"
        )
        if not self.clear_existing or not self.delete_rows:
            kept = f"keep its {self.delete_rows:,} rows and " if self.delete_rows else ""
            return f"Will {kept}{inserted} into fractal {self.target.name}."
        deleted = f"delete {self.delete_rows:,} rows ({_range(self.delete_first, self.delete_last)})"
        return f"Will {deleted} of fractal {self.target.name}, then {inserted}."


def _range(first: datetime | None, last: datetime | None) -> str:
    if first is None:
        return "no rows"
    return f"{first:%Y-%m-%d %H:%M:%S} – {last:%Y-%m-%d %H:%M:%S} UTC"


def plan_restore(archive: Archive, target: Fractal, clear_existing: bool) -> RestorePlan:
    count, first, last = logstore.fractal_span(str(target.pk))
    return RestorePlan(archive, target, clear_existing, count, first, last)
