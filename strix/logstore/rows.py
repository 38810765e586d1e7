"""Reading and writing a fractal's rows with the native protocol: batches, counts, spans, checksums."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from strix.logstore import cluster
from strix.logstore.client import (
    configured_node,
    connect,
    database,
    execute,
    plain_params,
    server_version,
    translate_error,
    utc,
)
from strix.logstore.schema import (
    LOG_COLUMNS,
    LOGS_TABLE,
    RECORD_COLUMNS,
    holds_milliseconds,
    row_hash,
    salted_row_hash,
    stored_timestamp_type,
)


def insert_rows(fractal_id: str, rows: Iterable[tuple]) -> int:
    """Insert ``(timestamp, log_id, raw_log, fields, ingest_timestamp)`` tuples into a fractal, as
    Strix's ingest does: into ``logs`` (on a sharded cluster the Distributed table, which sends them to
    the fractal's shard before it answers)."""
    batch = [(fractal_id, *row) for row in rows]
    if not batch:
        return 0
    statement = f"INSERT INTO {database()}.{LOGS_TABLE} ({', '.join(LOG_COLUMNS)}) VALUES"
    if cluster.sharded():
        execute(statement, batch, node=configured_node(), settings={"insert_distributed_sync": 1})
    else:
        execute(statement, batch, node=cluster.owner_node(fractal_id))
    return len(batch)


def _logs() -> str:
    """The table holding fractals' rows on the server that owns them (see strix.logstore.cluster)."""
    return f"{database()}.{cluster.data_table()}"


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
    query = f"SELECT count() FROM {_logs()} WHERE fractal_id = %(fid)s{where}"
    return execute(query, {"fid": fractal_id, **params}, node=cluster.owner_node(fractal_id))[0][0]


def stream_rows(
    fractal_id: str,
    start: datetime | None = None,
    end: datetime | None = None,
    block_size: int = 65536,
) -> Iterator[tuple]:
    """Yield a fractal's rows as ``RECORD_COLUMNS`` tuples, ordered by time, block by block."""
    where, params = _window(start, end)
    query = f"SELECT {', '.join(RECORD_COLUMNS)} FROM {_logs()} WHERE fractal_id = %(fid)s{where} ORDER BY timestamp"
    node = cluster.owner_node(fractal_id)
    client = connect(node=node)
    try:
        yield from client.execute_iter(
            query, plain_params({"fid": fractal_id, **params}, node), settings={"max_block_size": block_size}
        )
    except Exception as e:
        raise translate_error(e, node) from e
    finally:
        client.disconnect()


def fractal_span(
    fractal_id: str, start: datetime | None = None, end: datetime | None = None
) -> tuple[int, datetime | None, datetime | None]:
    """(row count, first timestamp, last timestamp) of a fractal's rows in ``[start, end)``."""
    where, params = _window(start, end)
    query = f"SELECT count(), min(timestamp), max(timestamp) FROM {_logs()} WHERE fractal_id = %(fid)s{where}"
    count, first, last = execute(query, {"fid": fractal_id, **params}, node=cluster.owner_node(fractal_id))[0]
    return (count, utc(first), utc(last)) if count else (0, None, None)


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
    milliseconds = holds_milliseconds(stored_timestamp_type())
    return value + (timedelta(milliseconds=1) if milliseconds else timedelta(seconds=1))


def window_checksum(fractal_id: str, start: datetime, end: datetime) -> tuple[int, int]:
    """(rows, order-independent sum of row hashes) of a fractal's rows in ``[start, end)``."""
    query = (
        f"SELECT count(), sum({row_hash(server_version())}) "
        f"FROM {_logs()} WHERE fractal_id = %(fid)s AND timestamp >= %(start)s AND timestamp < %(end)s"
    )
    params = {"fid": fractal_id, "start": start, "end": end}
    count, total = execute(query, params, node=cluster.owner_node(fractal_id))[0]
    return int(count), int(total or 0)


def day_figures(
    fractal_id: str, before: datetime, since: datetime | None = None, checksums: bool = False
) -> dict[str, tuple[int, int]]:
    """Per UTC day ``YYYY-MM-DD`` with rows in ``[since, before)``: (rows, order-independent sum of row
    hashes, as :func:`window_checksum` computes it; 0 unless ``checksums``), in one grouped statement.
    Without checksums only the timestamp column is read."""
    total = f"sum({row_hash(server_version())})" if checksums else "0"
    lower = "AND timestamp >= %(since)s" if since is not None else ""
    query = (
        f"SELECT toString(toDate(timestamp, 'UTC')) AS day, count(), {total} FROM {_logs()} "
        f"WHERE fractal_id = %(fid)s AND timestamp < %(before)s {lower} GROUP BY day"
    )
    params = {"fid": fractal_id, "before": before, "since": since}
    rows = execute(query, params, node=cluster.owner_node(fractal_id))
    return {day: (int(count), int(hashes or 0)) for day, count, hashes in rows}


@dataclass(frozen=True)
class Fingerprints:
    """A fractal's rows per UTC day ``YYYY-MM-DD``: (rows, sum of :func:`row_hash`, sum of the salted
    second hash), and the first and last timestamps of them all (None without rows)."""

    days: dict[str, tuple[int, int, int]]
    first: datetime | None
    last: datetime | None

    @property
    def rows(self) -> int:
        return sum(figures[0] for figures in self.days.values())


def day_fingerprints(fractal_id: str, since: datetime | None, salt: str) -> Fingerprints:
    """Each day's figures of a fractal's rows at or after ``since``, and their time span, in one grouped
    statement that neither sorts nor formats a row: what an archive records and the next one compares."""
    version = server_version()
    lower = "AND timestamp >= %(since)s" if since is not None else ""
    query = (
        f"SELECT toString(toDate(timestamp, 'UTC')) AS day, count(), sum({row_hash(version)}), "
        f"sum({salted_row_hash(version)}), min(timestamp), max(timestamp) FROM {_logs()} "
        f"WHERE fractal_id = %(fid)s {lower} GROUP BY day"
    )
    rows = execute(query, {"fid": fractal_id, "since": since, "salt": salt}, node=cluster.owner_node(fractal_id))
    days = {day: (int(count), int(first or 0), int(second or 0)) for day, count, first, second, _, _ in rows}
    if not rows:
        return Fingerprints(days, None, None)
    return Fingerprints(days, utc(min(row[4] for row in rows)), utc(max(row[5] for row in rows)))


def days_before(cutoffs: dict[str, datetime]) -> dict[str, dict[str, int]]:
    """For many fractals at once, each fractal's rows per UTC day ``YYYY-MM-DD`` before its own cutoff,
    in one grouped statement that reads the timestamp column only (a retention batch's first look)."""
    days: dict[str, dict[str, int]] = {fractal_id: {} for fractal_id in cutoffs}
    by_node = defaultdict(dict)  # on a sharded cluster each shard answers for its own fractals
    for fractal_id, cutoff in cutoffs.items():
        by_node[cluster.owner_node(fractal_id)][fractal_id] = cutoff
    for node, on_node in by_node.items():
        conditions, params = [], {}
        for index, (fractal_id, cutoff) in enumerate(on_node.items()):
            conditions.append(f"(fractal_id = %(fid{index})s AND timestamp < %(cutoff{index})s)")
            params.update({f"fid{index}": fractal_id, f"cutoff{index}": cutoff})
        query = (
            f"SELECT fractal_id, toString(toDate(timestamp, 'UTC')) AS day, count() FROM {_logs()} "
            f"WHERE {' OR '.join(conditions)} GROUP BY fractal_id, day"
        )
        for fractal_id, day, count in execute(query, params, node=node):
            days[fractal_id][day] = int(count)
    return days


def fractal_checksum(fractal_id: str) -> tuple[int, int]:
    """(row count, order-independent hash of every row) to prove a fractal unchanged."""
    query = f"SELECT count(), sum({row_hash(server_version())}) FROM {_logs()} WHERE fractal_id = %(fid)s"
    return tuple(execute(query, {"fid": fractal_id}, node=cluster.owner_node(fractal_id))[0])
