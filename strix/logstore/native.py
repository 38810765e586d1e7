"""ClickHouse over its native protocol (clickhouse-driver): schema, control statements, row batches."""

from __future__ import annotations

import contextvars
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from clickhouse_driver import Client
from clickhouse_driver import errors as ch_errors
from django.conf import settings

from strix.errors import OperatorError

LOGS_TABLE = "logs"
LOG_COLUMNS = ("fractal_id", "timestamp", "log_id", "raw_log", "fields", "ingest_timestamp")
# The columns an archive record carries, in order (DESIGN.md: archive record).
RECORD_COLUMNS = ("timestamp", "raw_log", "log_id", "fields", "ingest_timestamp")


class LogStoreError(OperatorError):
    """ClickHouse could not do what was asked; the message names the server."""


class LogStoreUnavailable(LogStoreError):
    """ClickHouse did not answer: not running, wrong address, or the network is down."""


class LogStoreQueryError(LogStoreError):
    """ClickHouse answered with an error."""


class LogStoreTimeout(LogStoreError):
    """A statement did not finish within the bound its caller set (see :func:`bounded`)."""


# Seconds one statement may take, set by :func:`bounded` for callers that must never wait long.
_statement_bound: contextvars.ContextVar[float | None] = contextvars.ContextVar("statement_bound", default=None)


@contextmanager
def bounded(seconds: float):
    """Within this block no statement waits longer than ``seconds`` for its answer.

    The client gives up (:class:`LogStoreTimeout`); ClickHouse may still run the statement later, so
    only statements that are harmless whenever they run belong in such a block (the reaper's).
    """
    token = _statement_bound.set(seconds)
    try:
        yield
    finally:
        _statement_bound.reset(token)


def server_address() -> str:
    cfg = settings.STRIX_CLICKHOUSE
    return f"{cfg['host']}:{cfg['port']}"


def database() -> str:
    return settings.STRIX_CLICKHOUSE_DATABASE


def _client(database_name: str | None = None) -> Client:
    cfg = settings.STRIX_CLICKHOUSE
    return Client(
        host=cfg["host"],
        port=cfg["port"],
        user=cfg["user"],
        password=cfg["password"],
        secure=cfg["secure"],
        database=database_name or "default",
        connect_timeout=5,
        send_receive_timeout=_statement_bound.get() or 600,
        settings={"use_client_time_zone": False},
    )


def _translate(e: Exception) -> LogStoreError:
    where = f"ClickHouse at {server_address()}"
    bound = _statement_bound.get()
    if bound and isinstance(e, (ch_errors.SocketTimeoutError, TimeoutError)):
        return LogStoreTimeout(f"{where} did not answer within {bound:g}s; the statement was left to finish later.")
    if isinstance(e, (ch_errors.NetworkError, ch_errors.SocketTimeoutError, OSError, EOFError)):
        return LogStoreUnavailable(
            f"{where} is unreachable ({e.__class__.__name__}: {str(e).strip() or 'no answer'}); "
            "check that it is running and that STRIX_CLICKHOUSE_URL points to it."
        )
    message = getattr(e, "message", None) or str(e)
    first_line = message.strip().splitlines()[0] if message.strip() else e.__class__.__name__
    return LogStoreQueryError(f"{where} refused the query: {first_line}")


def execute(query: str, params: dict | None = None, **kwargs):
    """Run one statement and return its result; every ClickHouse call goes through here."""
    client = _client()
    try:
        return client.execute(query, params, **kwargs)
    except LogStoreError:
        raise
    except Exception as e:
        raise _translate(e) from e
    finally:
        client.disconnect()


def server_version() -> tuple[int, ...]:
    (version,) = execute("SELECT version()")[0]
    return tuple(int(part) for part in version.split(".") if part.isdigit())


def has_datetime64(version: tuple[int, ...]) -> bool:
    """DateTime64 arrived in ClickHouse 20.1; older servers (18.16 here) store whole seconds."""
    return version >= (20, 1)


def timestamp_type(version: tuple[int, ...]) -> str:
    """The timestamp column type for a server version, pinned to UTC."""
    return "DateTime64(3, 'UTC')" if has_datetime64(version) else "DateTime('UTC')"


def logs_table_ddl(table: str, version: tuple[int, ...], materialized_fractal: str | None = None) -> str:
    """DDL of the ``logs`` table, or of a staging table of the same shape for one fractal."""
    ts = timestamp_type(version)
    fractal = "fractal_id String"
    if materialized_fractal is not None:
        # Archive records carry no fractal_id: a staging table computes it, so that its parts are
        # interchangeable with those of ``logs`` (ATTACH PARTITION … FROM compares names and types).
        fractal += f" MATERIALIZED {sql_string(materialized_fractal)}"
    return (
        f"CREATE TABLE IF NOT EXISTS {table} ({fractal}, timestamp {ts}, log_id String, "
        f"raw_log String, fields String, ingest_timestamp {ts}) "
        "ENGINE = MergeTree PARTITION BY toYYYYMM(timestamp) ORDER BY (fractal_id, timestamp)"
    )


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def ensure_schema() -> None:
    """Create the database and the ``logs`` table if missing, with types for this server."""
    execute(f"CREATE DATABASE IF NOT EXISTS {database()}")
    execute(logs_table_ddl(f"{database()}.{LOGS_TABLE}", server_version()))


def drop_database(name: str) -> None:
    execute(f"DROP DATABASE IF EXISTS {name}")


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
    client = _client()
    try:
        yield from client.execute_iter(query, {"fid": fractal_id, **params}, settings={"max_block_size": block_size})
    except Exception as e:
        raise _translate(e) from e
    finally:
        client.disconnect()


def wait_for_mutations(table: str, timeout: float = 3600) -> None:
    """Block until no mutation of ``table`` is pending; mutations are asynchronous on every release."""
    bound = _statement_bound.get()
    started = time.monotonic()
    deadline = started + (min(timeout, bound) if bound else timeout)
    query = (
        "SELECT count(), any(latest_fail_reason) FROM system.mutations "
        "WHERE database = %(db)s AND table = %(table)s AND is_done = 0"
    )
    columns = {row[0] for row in execute("DESCRIBE TABLE system.mutations")}
    if "latest_fail_reason" not in columns:
        query = query.replace("any(latest_fail_reason)", "''")
    while True:
        pending, failure = execute(query, {"db": database(), "table": table})[0]
        if not pending:
            return
        if failure:
            raise LogStoreQueryError(f"ClickHouse at {server_address()} failed a deletion: {failure}")
        if time.monotonic() > deadline:
            raise LogStoreTimeout(
                f"ClickHouse at {server_address()} did not finish deleting rows within {deadline - started:.0f}s."
            )
        time.sleep(0.2)


def fractal_span(fractal_id: str, start: datetime | None = None) -> tuple[int, datetime | None, datetime | None]:
    """(row count, first timestamp, last timestamp) of a fractal's rows at or after ``start``."""
    where, params = _window(start, None)
    query = (
        f"SELECT count(), min(timestamp), max(timestamp) FROM {database()}.{LOGS_TABLE} "
        f"WHERE fractal_id = %(fid)s{where}"
    )
    count, first, last = execute(query, {"fid": fractal_id, **params})[0]
    return (count, _utc(first), _utc(last)) if count else (0, None, None)


def day_windows(fractal_id: str, start: datetime | None = None) -> list[tuple[datetime, datetime]]:
    """UTC day windows ``[d, d+1)`` covering a fractal's rows at or after ``start``.

    Archives stream one day at a time so that ClickHouse sorts a day, never a whole fractal.
    """
    count, first, last = fractal_span(fractal_id, start)
    return windows_between(first, last, start) if count else []


def windows_between(first: datetime, last: datetime, start: datetime | None = None) -> list[tuple[datetime, datetime]]:
    """The UTC day windows from ``first``'s day to ``last``'s, the first one cut at ``start``."""
    day = datetime(first.year, first.month, first.day, tzinfo=UTC)
    windows = []
    while day <= last:
        windows.append((max(day, start) if start else day, day + timedelta(days=1)))
        day += timedelta(days=1)
    return windows


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def sql_string(value: str) -> str:
    return "'" + _quote(value) + "'"


def sql_time(value: datetime) -> str:
    return f"toDateTime('{_utc(value):%Y-%m-%d %H:%M:%S}', 'UTC')"


def create_staging_table(name: str, fractal_id: str) -> None:
    """A table shaped like ``logs`` that holds a restore's rows for ``fractal_id`` until verified."""
    execute(logs_table_ddl(f"{database()}.{name}", server_version(), materialized_fractal=fractal_id))


def count_table(table: str) -> int:
    return execute(f"SELECT count() FROM {database()}.{table}")[0][0]


def staged_partitions(table: str) -> dict[int, int]:
    """Rows per partition (``toYYYYMM(timestamp)``, the partition key of ``logs``) of a staging table."""
    query = f"SELECT toYYYYMM(timestamp) AS p, count() FROM {database()}.{table} GROUP BY p ORDER BY p"
    return {int(partition): count for partition, count in execute(query)}


def fractal_partition_rows(fractal_id: str, partition: int) -> int:
    query = (
        f"SELECT count() FROM {database()}.{LOGS_TABLE} "
        "WHERE fractal_id = %(fid)s AND toYYYYMM(timestamp) = %(partition)s"
    )
    return execute(query, {"fid": fractal_id, "partition": partition})[0][0]


def attach_partition(staging: str, partition: int) -> None:
    """Add a staging table's partition to ``logs``.

    ``ATTACH PARTITION … FROM`` hard-links the staged parts instead of copying rows (ClickHouse 18.16
    and current releases alike), so promotion costs next to nothing whatever the archive's size.
    """
    execute(f"ALTER TABLE {database()}.{LOGS_TABLE} ATTACH PARTITION {int(partition)} FROM {database()}.{staging}")


def drop_table(table: str) -> None:
    execute(f"DROP TABLE IF EXISTS {database()}.{table}")


def rename_table(old: str, new: str) -> None:
    """Rename atomically: a statement still naming ``old`` fails from then on (see promote.py)."""
    execute(f"RENAME TABLE {database()}.{old} TO {database()}.{new}")


def tables_with_prefix(prefix: str) -> list[str]:
    query = "SELECT name FROM system.tables WHERE database = %(db)s AND startsWith(name, %(prefix)s)"
    return [row[0] for row in execute(query, {"db": database(), "prefix": prefix})]


def window_checksum(fractal_id: str, start: datetime, end: datetime) -> tuple[int, int]:
    """(rows, order-independent sum of row hashes) of a fractal's rows in ``[start, end)``."""
    query = (
        "SELECT count(), sum(cityHash64(timestamp, log_id, raw_log, fields, ingest_timestamp)) "
        f"FROM {database()}.{LOGS_TABLE} WHERE fractal_id = %(fid)s AND timestamp >= %(start)s AND timestamp < %(end)s"
    )
    count, total = execute(query, {"fid": fractal_id, "start": start, "end": end})[0]
    return int(count), int(total or 0)


def fractal_checksum(fractal_id: str) -> tuple[int, int]:
    """(row count, order-independent hash of every row) to prove a fractal unchanged."""
    query = (
        "SELECT count(), sum(cityHash64(timestamp, log_id, raw_log, fields, ingest_timestamp)) "
        f"FROM {database()}.{LOGS_TABLE} WHERE fractal_id = %(fid)s"
    )
    return tuple(execute(query, {"fid": fractal_id})[0])


def ping() -> None:
    """Raise :class:`LogStoreUnavailable` unless ClickHouse answers."""
    execute("SELECT 1")
