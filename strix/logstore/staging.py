"""Staging tables of restores and their promotion into ``logs`` (ATTACH PARTITION … FROM)."""

from __future__ import annotations

from strix.logstore import cluster
from strix.logstore.client import database, execute, server_version
from strix.logstore.fences import wait_for_mutations
from strix.logstore.schema import logs_table_ddl, stored_timestamp_type

# A restore's staging table is a plain local table on the server the restore is pinned to
# (cluster.serving): ATTACH PARTITION … FROM replicates the attached parts to the other replicas.


def create_staging_table(name: str, fractal_id: str) -> None:
    """A table shaped like ``logs`` that holds a restore's rows for ``fractal_id`` until verified."""
    ddl = logs_table_ddl(f"{database()}.{name}", server_version(), staging=True, timestamp=stored_timestamp_type())
    execute(ddl, {"fractal_id": fractal_id})


def count_table(table: str) -> int:
    return execute(f"SELECT count() FROM {database()}.{table}")[0][0]


def staged_partitions(table: str) -> dict[int, int]:
    """Rows per partition (``toYYYYMM(timestamp)``, the partition key of ``logs``) of a staging table."""
    query = f"SELECT toYYYYMM(timestamp) AS p, count() FROM {database()}.{table} GROUP BY p ORDER BY p"
    return {int(partition): count for partition, count in execute(query)}


def fractal_partition_rows(fractal_id: str, partition: int) -> int:
    query = (
        f"SELECT count() FROM {database()}.{cluster.data_table()} "
        "WHERE fractal_id = %(fid)s AND toYYYYMM(timestamp) = %(partition)s"
    )
    return execute(query, {"fid": fractal_id, "partition": partition}, node=cluster.owner_node(fractal_id))[0][0]


def drop_staged_duplicates(staging: str, fractal_id: str, start, end, timeout: float = 3600) -> None:
    """Delete from a staging table the rows whose ``log_id`` the fractal already holds in ``[start, end]``.

    A mutation on the staging table alone (the restore's own), waited for.
    """
    if start is None:
        return
    logs = f"{database()}.{cluster.data_table()}"
    execute(
        f"ALTER TABLE {database()}.{staging} DELETE WHERE log_id IN (SELECT log_id FROM {logs} "
        "WHERE fractal_id = %(fid)s AND timestamp >= %(start)s AND timestamp <= %(end)s)",
        {"fid": fractal_id, "start": start, "end": end},
    )
    wait_for_mutations(staging, timeout)


def narrow_staging(staging: str, start=None, end=None, timeout=3600) -> None:
    """Keep in a staging table only the rows in ``[start, end)``; a mutation on the restore's own table,
    waited for. (Filters on the rows' text are applied as the archive streams, never in SQL: see
    archives.services.options.RestoreOptions.matches.)"""
    conditions, params = [], {}
    if start is not None:
        conditions.append("timestamp >= %(start)s")
        params["start"] = start
    if end is not None:
        conditions.append("timestamp < %(end)s")
        params["end"] = end
    if not conditions:
        return
    execute(f"ALTER TABLE {database()}.{staging} DELETE WHERE NOT ({' AND '.join(conditions)})", params)
    wait_for_mutations(staging, timeout)


def attach_partition(staging: str, partition: int) -> None:
    """Add a staging table's partition to ``logs``.

    ``ATTACH PARTITION … FROM`` hard-links the staged parts instead of copying rows (ClickHouse 18.16
    and current releases alike), so promotion costs next to nothing whatever the archive's size.
    """
    target = f"{database()}.{cluster.data_table()}"
    execute(f"ALTER TABLE {target} ATTACH PARTITION {int(partition)} FROM {database()}.{staging}")
