"""The only package that talks to ClickHouse, where Strix keeps log rows.

Control statements and row batches go through clickhouse-driver (``native``); bulk NDJSON streams for
archives go through ClickHouse's HTTP interface (``http``), where the server formats and parses
``JSONEachRow`` itself. Every failure surfaces as a :class:`LogStoreError` naming the server.

The differences between ClickHouse releases live in :func:`timestamp_type` and nowhere else.
"""

from strix.logstore.http import insert_records, stream_records
from strix.logstore.native import (
    LOG_COLUMNS,
    LOGS_TABLE,
    RECORD_COLUMNS,
    LogStoreError,
    LogStoreQueryError,
    LogStoreUnavailable,
    attach_partition,
    count_rows,
    count_table,
    create_staging_table,
    database,
    day_windows,
    delete_rows,
    drop_database,
    drop_table,
    ensure_schema,
    execute,
    fractal_checksum,
    fractal_partition_rows,
    fractal_span,
    has_datetime64,
    insert_rows,
    logs_table_ddl,
    ping,
    server_address,
    server_version,
    staged_partitions,
    stream_rows,
    tables_with_prefix,
    timestamp_type,
    wait_for_mutations,
)

__all__ = [
    "LOG_COLUMNS",
    "LOGS_TABLE",
    "RECORD_COLUMNS",
    "LogStoreError",
    "LogStoreQueryError",
    "LogStoreUnavailable",
    "count_rows",
    "count_table",
    "create_staging_table",
    "database",
    "day_windows",
    "delete_rows",
    "drop_database",
    "drop_table",
    "ensure_schema",
    "execute",
    "fractal_checksum",
    "fractal_span",
    "has_datetime64",
    "insert_records",
    "insert_rows",
    "logs_table_ddl",
    "ping",
    "attach_partition",
    "fractal_partition_rows",
    "staged_partitions",
    "server_address",
    "server_version",
    "stream_records",
    "stream_rows",
    "tables_with_prefix",
    "timestamp_type",
    "wait_for_mutations",
]
