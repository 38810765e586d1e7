"""The ``logs`` table and its shape; the one place where ClickHouse releases differ (:func:`timestamp_type`)."""

from __future__ import annotations

from datetime import timedelta

from strix.logstore.client import database, execute, server_version

LOGS_TABLE = "logs"
LOG_COLUMNS = ("fractal_id", "timestamp", "log_id", "raw_log", "fields", "ingest_timestamp")
# The columns an archive record carries, in order (DESIGN.md: archive record).
RECORD_COLUMNS = ("timestamp", "raw_log", "log_id", "fields", "ingest_timestamp")


def has_datetime64(version: tuple[int, ...]) -> bool:
    """DateTime64 arrived in ClickHouse 20.1; older servers (18.16 here) store whole seconds."""
    return version >= (20, 1)


def timestamp_resolution(version: tuple[int, ...]) -> timedelta:
    """The smallest step between two stored timestamps: milliseconds, or whole seconds on old servers."""
    return timedelta(milliseconds=1) if has_datetime64(version) else timedelta(seconds=1)


def timestamp_type(version: tuple[int, ...]) -> str:
    """The timestamp column type for a server version, pinned to UTC."""
    return "DateTime64(3, 'UTC')" if has_datetime64(version) else "DateTime('UTC')"


def logs_table_ddl(table: str, version: tuple[int, ...], staging: bool = False) -> str:
    """DDL of the ``logs`` table, or of a staging table of the same shape for one fractal, whose id
    the statement takes as its ``%(fractal_id)s`` parameter."""
    ts = timestamp_type(version)
    fractal = "fractal_id String"
    if staging:
        # Archive records carry no fractal_id: a staging table computes it, so that its parts are
        # interchangeable with those of ``logs`` (ATTACH PARTITION … FROM compares names and types).
        fractal += " MATERIALIZED %(fractal_id)s"
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
