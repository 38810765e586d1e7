"""The ``logs`` table and its shape; the one place where ClickHouse releases differ (:func:`timestamp_type`)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from strix.logstore.client import database, execute, server_version, sql_string, utc

LOGS_TABLE = "logs"


LOG_COLUMNS = ("fractal_id", "timestamp", "log_id", "raw_log", "fields", "ingest_timestamp")
# The columns an archive record carries, in order (DESIGN.md: archive record).


# The columns an archive record carries, in order (DESIGN.md: archive record).
RECORD_COLUMNS = ("timestamp", "raw_log", "log_id", "fields", "ingest_timestamp")


def has_datetime64(version: tuple[int, ...]) -> bool:
    """DateTime64 arrived in ClickHouse 20.1; older servers (18.16 here) store whole seconds."""
    return version >= (20, 1)


def timestamp_resolution(version: tuple[int, ...]) -> timedelta:
    """The smallest step between two stored timestamps: milliseconds, or whole seconds on old servers."""
    return timedelta(milliseconds=1) if has_datetime64(version) else timedelta(seconds=1)


def sql_time(value: datetime) -> str:
    """A timestamp literal for the ``logs`` columns: with milliseconds where the server stores them."""
    value = utc(value)
    if value.microsecond and has_datetime64(server_version()):
        return f"toDateTime64('{value:%Y-%m-%d %H:%M:%S}.{value.microsecond // 1000:03d}', 3, 'UTC')"
    return f"toDateTime('{value:%Y-%m-%d %H:%M:%S}', 'UTC')"


def field_equals_sql(version: tuple[int, ...], key: str, value: str) -> str:
    """A condition "the parsed field ``key`` is the string ``value``" on the ``fields`` JSON column.

    Servers from 19.6 parse the JSON (JSONExtractString); older ones (18.16) have no JSON parser that
    allows spaces after colons, so the key/value pair is matched as text in both spellings.
    """
    if version >= (19, 6):
        return f"JSONExtractString(fields, {sql_string(key)}) = {sql_string(value)}"
    pair = json.dumps({key: value}, ensure_ascii=False)[1:-1]  # "key": "value"
    compact = json.dumps({key: value}, ensure_ascii=False, separators=(",", ":"))[1:-1]
    return " OR ".join(f"position(fields, {sql_string(text)}) > 0" for text in (pair, compact))


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


def ensure_schema() -> None:
    """Create the database and the ``logs`` table if missing, with types for this server."""
    execute(f"CREATE DATABASE IF NOT EXISTS {database()}")
    execute(logs_table_ddl(f"{database()}.{LOGS_TABLE}", server_version()))


def drop_database(name: str) -> None:
    execute(f"DROP DATABASE IF EXISTS {name}")


def drop_table(table: str) -> None:
    execute(f"DROP TABLE IF EXISTS {database()}.{table}")


def rename_table(old: str, new: str) -> None:
    """Rename atomically: a statement still naming ``old`` fails from then on (see promote.py)."""
    execute(f"RENAME TABLE {database()}.{old} TO {database()}.{new}")


def tables_with_prefix(prefix: str) -> list[str]:
    query = "SELECT name FROM system.tables WHERE database = %(db)s AND startsWith(name, %(prefix)s)"
    return [row[0] for row in execute(query, {"db": database(), "prefix": prefix})]
