"""What part of an archive a restore takes: a time range and optional filters, checked up front."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from archives.services.errors import ArchiveError


class BadRestoreOptions(ArchiveError):
    pass


@dataclass(frozen=True)
class RestoreOptions:
    start: datetime | None = None  # inclusive
    end: datetime | None = None  # exclusive
    contains: str = ""  # substring of the raw log
    field: tuple[str, str] | None = None  # parsed field = value

    def __post_init__(self):
        if self.start and self.end and self.start >= self.end:
            raise BadRestoreOptions(f"--from {self.start:%Y-%m-%d %H:%M} is not before --to {self.end:%Y-%m-%d %H:%M}.")

    @classmethod
    def parse(cls, start=None, end=None, contains: str = "", field_text: str = "") -> RestoreOptions:
        field = None
        if field_text:
            key, sep, value = field_text.partition("=")
            if not sep or not key.strip():
                raise BadRestoreOptions(f"a field filter looks like name=value, not {field_text!r}.")
            field = (key.strip(), value)
        return cls(start, end, contains, field)

    @classmethod
    def of(cls, job) -> RestoreOptions:
        return cls.parse(job.range_start, job.range_end, job.contains, job.field_filter)

    @property
    def field_text(self) -> str:
        return f"{self.field[0]}={self.field[1]}" if self.field else ""

    @property
    def narrows(self) -> bool:
        return bool(self.start or self.end or self.contains or self.field)

    def touches_day(self, day: str) -> bool:
        """Whether the UTC day ``YYYY-MM-DD`` holds any instant of the time range."""
        start = datetime.fromisoformat(day).replace(tzinfo=UTC)
        return (self.end is None or start < self.end) and (self.start is None or start + timedelta(days=1) > self.start)

    @property
    def filters(self) -> bool:
        return bool(self.contains or self.field)
