"""What part of an archive a restore or a search takes: a time range and optional filters, checked up
front, and the one definition of which records they keep (:meth:`RestoreOptions.matches`).

The filters are applied in Python to the records as they stream out of the archive — by restores,
searches and the Restore step's estimate alike — never as SQL: ClickHouse 18.16 has no JSON parser for
the ``fields`` column, and one definition of "matches" cannot disagree with itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation

from archives.services.errors import ArchiveError

# The longest filter text a restore or search record keeps (RangeAndFilters' columns).
MAX_FILTER_TEXT = 500


class BadRestoreOptions(ArchiveError):
    pass


def _checked_text(what: str, text: str) -> str:
    if "\x00" in text:
        raise BadRestoreOptions(f"{what} holds a NUL character; log text cannot be searched for one.")
    if len(text) > MAX_FILTER_TEXT:
        raise BadRestoreOptions(f"{what} is {len(text):,} characters long; at most {MAX_FILTER_TEXT} are allowed.")
    return text


def field_value_text(value) -> str:
    """A parsed field's value as the text a field filter compares with: strings as they are, ``true``,
    ``false`` and ``null`` as JSON spells them, objects and arrays as compact JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def field_matches(fields: dict, key: str, wanted: str) -> bool:
    """Whether the parsed field ``key`` is ``wanted``: the same text, or for a number the same number
    (``4624`` matches 4624 and 4624.0)."""
    if not isinstance(fields, dict) or key not in fields:
        return False
    value = fields[key]
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return Decimal(repr(value)) == Decimal(wanted.strip())
        except (InvalidOperation, ValueError):
            return False
    return field_value_text(value) == wanted


@dataclass(frozen=True)
class RestoreOptions:
    start: datetime | None = None  # inclusive
    end: datetime | None = None  # exclusive
    contains: str = ""  # substring of the raw log
    field: tuple[str, str] | None = None  # parsed field = value

    def __post_init__(self):
        if self.start and self.end and self.start >= self.end:
            raise BadRestoreOptions(f"--from {self.start:%Y-%m-%d %H:%M} is not before --to {self.end:%Y-%m-%d %H:%M}.")
        _checked_text("Raw log contains", self.contains)
        if self.field is not None:
            _checked_text("The field filter", self.field_text)

    @classmethod
    def parse(cls, start=None, end=None, contains: str = "", field_text: str = "") -> RestoreOptions:
        field = None
        _checked_text("The field filter", field_text or "")
        if field_text:
            key, sep, value = field_text.partition("=")
            if not sep or not key.strip():
                raise BadRestoreOptions(f"a field filter looks like name=value, not {field_text[:80]!r}.")
            field = (key.strip(), value)
        return cls(start, end, contains or "", field)

    @classmethod
    def of(cls, job) -> RestoreOptions:
        return cls.parse(job.range_start, job.range_end, job.contains, job.field_filter)

    @property
    def field_text(self) -> str:
        return f"{self.field[0]}={self.field[1]}" if self.field else ""

    @property
    def narrows(self) -> bool:
        return bool(self.start or self.end or self.contains or self.field)

    @property
    def has_range(self) -> bool:
        return bool(self.start or self.end)

    @property
    def filters(self) -> bool:
        return bool(self.contains or self.field)

    def range_only(self) -> RestoreOptions:
        return RestoreOptions(self.start, self.end)

    def filters_only(self) -> RestoreOptions:
        return RestoreOptions(contains=self.contains, field=self.field)

    def describe_range(self) -> str:
        first = f"{self.start:%Y-%m-%d %H:%M:%S}" if self.start else "the first row"
        last = f"{self.end:%Y-%m-%d %H:%M:%S}" if self.end else "the last row"
        return f"[{first}, {last}) UTC"

    def require_within(self, archive) -> None:
        """Refuse a time range that holds none of the archive's time span (nothing would be restored)."""
        if not self.has_range or archive.time_start is None or archive.time_end is None:
            return
        if (self.end is not None and self.end <= archive.time_start) or (
            self.start is not None and self.start > archive.time_end
        ):
            raise BadRestoreOptions(
                f"the time range {self.describe_range()} holds none of archive {archive.short_id}'s rows, which "
                f"span {archive.time_start:%Y-%m-%d %H:%M:%S} – {archive.time_end:%Y-%m-%d %H:%M:%S} UTC."
            )

    def touches_day(self, day: str) -> bool:
        """Whether the UTC day ``YYYY-MM-DD`` holds any instant of the time range."""
        start = datetime.fromisoformat(day).replace(tzinfo=UTC)
        return (self.end is None or start < self.end) and (self.start is None or start + timedelta(days=1) > self.start)

    def matches(self, record: dict) -> bool:
        """Whether an archive record (one parsed NDJSON line) is kept: inside ``[start, end)``, its raw
        log containing ``contains``, its parsed field ``key`` being ``value`` (:func:`field_matches`)."""
        if self.start or self.end:
            at = record_time(record)
            if (self.start and at < self.start) or (self.end and at >= self.end):
                return False
        if self.contains and self.contains not in record["raw_log"]:
            return False
        if self.field is not None:
            try:
                fields = json.loads(record["fields"] or "{}")
            except ValueError:
                return False
            return field_matches(fields, *self.field)
        return True

    def contains_only(self) -> bool:
        """Whether the raw-log text is the only condition (no time range, no field)."""
        return bool(self.contains) and not (self.start or self.end) and self.field is None

    def needle(self) -> bytes | None:
        """Bytes every matching NDJSON line holds as they are, to skip most lines without parsing them;
        None when the text could be spelled otherwise in JSON (anything but printable ASCII other than
        quotes, backslashes and slashes, which writers may escape)."""
        text = self.contains
        if not text or any(c in text for c in '"\\/') or any(not (" " <= c <= "~") for c in text):
            return None
        return text.encode()


def record_time(record: dict) -> datetime:
    return datetime.fromisoformat(record["timestamp"].replace(" ", "T")).replace(tzinfo=UTC)
