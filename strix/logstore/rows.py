"""Reading and writing a fractal's rows with the native protocol: batches, counts, spans, checksums."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta

from strix.logstore.client import connect, database, execute, plain_params, server_version, translate_error, utc
from strix.logstore.schema import LOG_COLUMNS, LOGS_TABLE, RECORD_COLUMNS, timestamp_resolution


def insert_rows(fractal_id: str, rows: Iterable[tuple]) -> int:
    """Insert ``(timestamp, log_id, raw_log, fields, ingest_timestamp)`` tuples into a fractal."""
    batch = [(fractal_id, *row) for row in rows]
    if not batch:
        return 0
    execute(f"INSERT INTO {database()}.{LOGS_TABLE} ({', '.join(LOG_COLUMNS)}) VALUES", batch)
    return len(batch)


def _window(start: datetime | None, end: datetime | None) -> tuple[str, dict]:
    clauses, params = [], {}
    if start is not None:
        clauses.append("timestamp >= %(start)s")
        params["start"] = start
    if end is not None:
        clauses.append("timestamp < %(end)s")
        params["end"] = end
    return "".join(f" AND {c}" for c in clauses), params


def count_rows(fractal_id: str, start: datetime | None = None, end: datetime | None = None) -> int:
    where, params = _window(start, end)
    query = f"SELECT count() FROM {database()}.{LOGS_TABLE} WHERE fractal_id = %(fid)s{where}"
    return execute(query, {"fid": fractal_id, **params})[0][0]


def stream_rows(
    fractal_id: str,
    start: datetime | None = None,
    end: datetime | None = None,
    block_size: int = 65536,
) -> Iterator[tuple]:
    """Yield a fractal's rows as ``RECORD_COLUMNS`` tuples, ordered by time, block by block."""
    where, params = _window(start, end)
    query = (
        f"SELECT {', '.join(RECORD_COLUMNS)} FROM {database()}.{LOGS_TABLE} "
        f"WHERE fractal_id = %(fid)s{where} ORDER BY timestamp"
    )
    client = connect()
    try:
        yield from client.execute_iter(
            query, plain_params({"fid": fractal_id, **params}), settings={"max_block_size": block_size}
        )
    except Exception as e:
        raise translate_error(e) from e
    finally:
        client.disconnect()


def fractal_span(
    fractal_id: str, start: datetime | None = None, end: datetime | None = None
) -> tuple[int, datetime | None, datetime | None]:
    """(row count, first timestamp, last timestamp) of a fractal's rows in ``[start, end)``."""
    where, params = _window(start, end)
    query = (
        f"SELECT count(), min(timestamp), max(timestamp) FROM {database()}.{LOGS_TABLE} "
        f"WHERE fractal_id = %(fid)s{where}"
    )
    count, first, last = execute(query, {"fid": fractal_id, **params})[0]
    return (count, utc(first), utc(last)) if count else (0, None, None)


def day_windows(fractal_id: str, start: datetime | None = None) -> list[tuple[datetime, datetime]]:
    """UTC day windows ``[d, d+1)`` covering a fractal's rows at or after ``start``.

    Archives stream one day at a time so that ClickHouse sorts a day, never a whole fractal.
    """
    count, first, last = fractal_span(fractal_id, start)
    return windows_between(first, last, start) if count else []


def windows_between(
    first: datetime, last: datetime, start: datetime | None = None, end: datetime | None = None
) -> list[tuple[datetime, datetime]]:
    """The UTC day windows ``[d, d+1)`` from ``first``'s day to ``last``'s, the first one cut at
    ``start`` and the last one at ``end``."""
    day = datetime(first.year, first.month, first.day, tzinfo=UTC)
    windows = []
    while day <= last:
        window_end = day + timedelta(days=1)
        windows.append((max(day, start) if start else day, min(window_end, end) if end else window_end))
        day = window_end
    return windows


def just_after(value: datetime) -> datetime:
    """The first timestamp the ``logs`` table can hold after ``value`` (its resolution depends on the server)."""
    return value + timestamp_resolution(server_version())


def window_checksum(fractal_id: str, start: datetime, end: datetime) -> tuple[int, int]:
    """(rows, order-independent sum of row hashes) of a fractal's rows in ``[start, end)``."""
    query = (
        "SELECT count(), sum(cityHash64(timestamp, log_id, raw_log, fields, ingest_timestamp)) "
        f"FROM {database()}.{LOGS_TABLE} WHERE fractal_id = %(fid)s AND timestamp >= %(start)s AND timestamp < %(end)s"
    )
    count, total = execute(query, {"fid": fractal_id, "start": start, "end": end})[0]
    return int(count), int(total or 0)


def day_figures(
    fractal_id: str, before: datetime, since: datetime | None = None, checksums: bool = False
) -> dict[str, tuple[int, int]]:
    """Per UTC day ``YYYY-MM-DD`` with rows in ``[since, before)``: (rows, order-independent sum of row
    hashes, as :func:`window_checksum` computes it; 0 unless ``checksums``), in one grouped statement.
    Without checksums only the timestamp column is read."""
    total = "sum(cityHash64(timestamp, log_id, raw_log, fields, ingest_timestamp))" if checksums else "0"
    lower = "AND timestamp >= %(since)s" if since is not None else ""
    query = (
        f"SELECT toString(toDate(timestamp, 'UTC')) AS day, count(), {total} FROM {database()}.{LOGS_TABLE} "
        f"WHERE fractal_id = %(fid)s AND timestamp < %(before)s {lower} GROUP BY day"
    )
    rows = execute(query, {"fid": fractal_id, "before": before, "since": since})
    return {day: (int(count), int(hashes or 0)) for day, count, hashes in rows}


def days_before(cutoffs: dict[str, datetime]) -> dict[str, dict[str, int]]:
    """For many fractals at once, each fractal's rows per UTC day ``YYYY-MM-DD`` before its own cutoff,
    in one grouped statement that reads the timestamp column only (a retention batch's first look)."""
    if not cutoffs:
        return {}
    conditions, params = [], {}
    for index, (fractal_id, cutoff) in enumerate(cutoffs.items()):
        conditions.append(f"(fractal_id = %(fid{index})s AND timestamp < %(cutoff{index})s)")
        params.update({f"fid{index}": fractal_id, f"cutoff{index}": cutoff})
    query = (
        f"SELECT fractal_id, toString(toDate(timestamp, 'UTC')) AS day, count() FROM {database()}.{LOGS_TABLE} "
        f"WHERE {' OR '.join(conditions)} GROUP BY fractal_id, day"
    )
    days: dict[str, dict[str, int]] = {fractal_id: {} for fractal_id in cutoffs}
    for fractal_id, day, count in execute(query, params):
        days[fractal_id][day] = int(count)
    return days


def fractal_checksum(fractal_id: str) -> tuple[int, int]:
    """(row count, order-independent hash of every row) to prove a fractal unchanged."""
    query = (
        "SELECT count(), sum(cityHash64(timestamp, log_id, raw_log, fields, ingest_timestamp)) "
        f"FROM {database()}.{LOGS_TABLE} WHERE fractal_id = %(fid)s"
    )
    return tuple(execute(query, {"fid": fractal_id})[0])
