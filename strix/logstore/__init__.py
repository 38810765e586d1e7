"""The only package that talks to ClickHouse, where Strix keeps log rows.

Statements and row batches go over the native protocol (``client``); bulk NDJSON streams for archives
go over the HTTP interface, where the server formats and parses ``JSONEachRow`` itself (``records``
out, ``inserts`` in). Every failure is a :class:`LogStoreError` naming the server. The differences
between ClickHouse releases live in ``schema.timestamp_type`` and nowhere else.

Modules: ``client`` (execute, errors, bounds) · ``schema`` (the logs table) · ``rows`` (a fractal's rows)
· ``records``/``inserts`` (NDJSON out/in) · ``staging`` (restore staging tables, promotion) ·
``fences`` (destructive statements, fenced against stale workers) · ``cluster`` (replicated and sharded
ClickHouse: which server holds a fractal's rows).
"""

# Errors and the connection; clusters (which server holds a fractal's rows)
from strix.logstore import cluster
from strix.logstore.client import (
    LogStoreError,
    LogStoreQueryError,
    LogStoreTimeout,
    LogStoreUnavailable,
    Node,
    bounded,
    configured_node,
    current_node,
    execute,
    ping,
    pinned_to,
    server_address,
    server_version,
)
from strix.logstore.cluster import every_shard, serving

# Deleting rows and owning a fractal (fences)
from strix.logstore.fences import (
    Deletion,
    FenceNotRecorded,
    current_fence,
    delete_rows,
    delete_window,
    delete_windows,
    record_fence,
    record_fences,
    rows_left,
    wait_for_mutations,
)

# Writing rows
from strix.logstore.inserts import RecordRejected, insert_records

# Reading rows
from strix.logstore.records import RecordStreams, records_by_day, stream_records
from strix.logstore.rows import (
    count_rows,
    day_figures,
    day_fingerprints,
    days_before,
    fractal_checksum,
    fractal_span,
    insert_rows,
    just_after,
    stream_rows,
    window_checksum,
    windows_between,
)

# Schema and maintenance
from strix.logstore.schema import (
    LOG_COLUMNS,
    LOGS_TABLE,
    RECORD_COLUMNS,
    database,
    drop_database,
    drop_table,
    ensure_schema,
    has_datetime64,
    logs_table_ddl,
    rename_table,
    require_cluster_layout,
    table_engines,
    tables_with_prefix,
    timestamp_type,
)

# Restore staging and promotion
from strix.logstore.staging import (
    attach_partition,
    count_table,
    create_staging_table,
    drop_staged_duplicates,
    fractal_partition_rows,
    narrow_staging,
    staged_partitions,
)

__all__ = [
    "LOG_COLUMNS",
    "LOGS_TABLE",
    "RECORD_COLUMNS",
    "LogStoreError",
    "LogStoreQueryError",
    "LogStoreTimeout",
    "LogStoreUnavailable",
    "RecordRejected",
    "attach_partition",
    "cluster",
    "bounded",
    "count_rows",
    "count_table",
    "create_staging_table",
    "current_fence",
    "database",
    "day_figures",
    "day_fingerprints",
    "days_before",
    "delete_rows",
    "delete_window",
    "delete_windows",
    "Deletion",
    "FenceNotRecorded",
    "Node",
    "configured_node",
    "current_node",
    "every_shard",
    "pinned_to",
    "rows_left",
    "serving",
    "drop_database",
    "drop_staged_duplicates",
    "drop_table",
    "ensure_schema",
    "execute",
    "fractal_checksum",
    "fractal_partition_rows",
    "fractal_span",
    "has_datetime64",
    "insert_records",
    "insert_rows",
    "just_after",
    "logs_table_ddl",
    "narrow_staging",
    "ping",
    "record_fence",
    "record_fences",
    "rename_table",
    "require_cluster_layout",
    "table_engines",
    "server_address",
    "server_version",
    "staged_partitions",
    "RecordStreams",
    "records_by_day",
    "stream_records",
    "stream_rows",
    "tables_with_prefix",
    "timestamp_type",
    "wait_for_mutations",
    "window_checksum",
    "windows_between",
]
