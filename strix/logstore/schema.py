"""The ``logs`` table and its shape; the one place where ClickHouse releases differ (:func:`timestamp_type`)."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings

from strix.logstore import cluster
from strix.logstore.client import LogStoreError, configured_node, database, execute, server_version

LOGS_TABLE = cluster.LOGS_TABLE
FENCES_TABLE = "claim_fences"
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


def row_hash(version: tuple[int, ...]) -> str:
    """A row's 64-bit hash, the same on every release for the same row: timestamps enter it as UInt64
    milliseconds, whether the column holds DateTime (seconds) or DateTime64(3), so that a day's figures
    agree across a ClickHouse upgrade and between an archive's source and its restore target."""
    if has_datetime64(version):
        ms = "toUnixTimestamp64Milli(toDateTime64({}, 3))"  # also right for a DateTime column kept from 18.16
    else:
        ms = "(toUInt64(toUnixTimestamp({})) * 1000)"
    return f"cityHash64({ms.format('timestamp')}, log_id, raw_log, fields, {ms.format('ingest_timestamp')})"


def salted_row_hash(version: tuple[int, ...]) -> str:
    """A second 64-bit row hash, independent of :func:`row_hash`: MetroHash64 instead of CityHash64,
    over the same values and a secret salt (the statement's ``%(salt)s`` parameter). A synthetic
    archive copies a day only if the day's row count and both sums of hashes are unchanged, so an
    accidental collision needs both sums to collide at once, and one crafted against CityHash alone
    does not carry over. (MetroHash64 gives the same values on 18.16 and current releases;
    farmHash64 does not.)"""
    timestamps = row_hash(version).removeprefix("cityHash64(")
    return f"metroHash64(%(salt)s, {timestamps}"


def mutation_settings(version: tuple[int, ...]) -> dict:
    """Settings a fenced DELETE needs: current releases call a mutation whose condition reads another
    table (the fence) non-deterministic and refuse it on replicated tables unless allowed."""
    return {"allow_nondeterministic_mutations": 1} if has_datetime64(version) else {}


def logs_table_ddl(
    table: str,
    version: tuple[int, ...],
    staging: bool = False,
    replicated: bool = False,
    timestamp: str | None = None,
) -> str:
    """DDL of the ``logs`` table, or of a staging table of the same shape for one fractal, whose id
    the statement takes as its ``%(fractal_id)s`` parameter. ``replicated``: created on every server
    of the cluster, as a ReplicatedMergeTree on the parameters of :func:`replication_params`.
    ``timestamp``: the column type, if not this version's (a staging table copies its target's)."""
    ts = timestamp or timestamp_type(version)
    fractal = "fractal_id String"
    if staging:
        # Archive records carry no fractal_id: a staging table computes it, so that its parts are
        # interchangeable with those of ``logs`` (ATTACH PARTITION … FROM compares names and types).
        fractal += " MATERIALIZED %(fractal_id)s"
    engine = "ReplicatedMergeTree(%(zookeeper_path)s, %(replica_name)s)" if replicated else "MergeTree"
    where = cluster.on_cluster() if replicated else ""
    return (
        f"CREATE TABLE IF NOT EXISTS {table}{where} ({fractal}, timestamp {ts}, log_id String, "
        f"raw_log String, fields String, ingest_timestamp {ts}) "
        f"ENGINE = {engine} PARTITION BY toYYYYMM(timestamp) ORDER BY (fractal_id, timestamp)"
    )


def replication_params(table: str) -> dict:
    """A replicated table's ZooKeeper path and replica name. The database and table are written into
    the path literally: a path that kept ClickHouse's {database}/{table} macros stopped a server from
    starting after a RENAME. {shard} and {replica} stay macros, each server filling in its own."""
    config = settings.STRIX_CLICKHOUSE_CLUSTER
    path = config["zookeeper_path"].replace("{database}", database()).replace("{table}", table)
    return {"zookeeper_path": path, "replica_name": config["replica_name"]}


def ensure_schema() -> None:
    """Create the database and the tables if missing, with types for this server: on one server, or on
    every server of STRIX_CLICKHOUSE_CLUSTER (see strix.logstore.cluster for the layouts)."""
    execute(f"CREATE DATABASE IF NOT EXISTS {database()}{cluster.on_cluster()}", node=configured_node())
    version = server_version()
    if not cluster.replicated():
        execute(logs_table_ddl(f"{database()}.{LOGS_TABLE}", version))
    else:
        data = cluster.data_table()
        ddl = logs_table_ddl(f"{database()}.{data}", version, replicated=True)
        execute(ddl, replication_params(data), node=configured_node())
        if cluster.sharded():
            execute(
                f"CREATE TABLE IF NOT EXISTS {database()}.{LOGS_TABLE}{cluster.on_cluster()} AS {database()}.{data} "
                f"ENGINE = Distributed({cluster.cluster_name()}, {database()}, {data}, cityHash64(fractal_id))",
                node=configured_node(),
            )
        require_cluster_layout()
    ensure_fence_table()


def ensure_fence_table() -> None:
    """``claim_fences`` (strix.logstore.fences): on one server a MergeTree; on a cluster a
    ReplicatedMergeTree on every server (each shard keeps the fences of its fractals, beside their rows)."""
    columns = "(fractal_id String, fence UInt64, recorded_at DateTime('UTC') DEFAULT now())"
    if not cluster.replicated():
        execute(
            f"CREATE TABLE IF NOT EXISTS {database()}.{FENCES_TABLE} {columns} ENGINE = MergeTree "
            "ORDER BY (fractal_id, fence)"
        )
        return
    exists = "SELECT count() FROM system.tables WHERE database = %(db)s AND name = %(table)s"
    if execute(exists, {"db": database(), "table": FENCES_TABLE})[0][0]:
        return  # ON CLUSTER DDL costs a round through ZooKeeper and every server: only when missing
    execute(
        f"CREATE TABLE IF NOT EXISTS {database()}.{FENCES_TABLE}{cluster.on_cluster()} {columns} "
        "ENGINE = ReplicatedMergeTree(%(zookeeper_path)s, %(replica_name)s) ORDER BY (fractal_id, fence)",
        replication_params(FENCES_TABLE),
    )


def table_engines() -> dict[str, str]:
    """Each table of the database and its full engine clause, on STRIX_CLICKHOUSE_URL's server."""
    query = "SELECT name, engine_full FROM system.tables WHERE database = %(db)s"
    return dict(execute(query, {"db": database()}, node=configured_node()))


def require_cluster_layout() -> None:
    """Refuse tables that would make fencing or per-fractal work unsafe on the cluster: a data table
    that does not replicate, or a Distributed ``logs`` that spreads a fractal over several shards."""
    engines = table_engines()
    data = cluster.data_table()
    where = f"ClickHouse at {configured_node()}"
    if not engines.get(data, "").startswith("Replicated"):
        raise LogStoreError(
            f"STRIX_CLICKHOUSE_CLUSTER={cluster.cluster_name()}, but {database()}.{data} on {where} is "
            f"{engines.get(data, 'missing').split('(')[0] or 'missing'}, not a ReplicatedMergeTree: a fenced deletion "
            "could be lost on a replica. Recreate it ON CLUSTER as docs/OPERATIONS.md shows, or unset the cluster."
        )
    if cluster.sharded():
        distributed = engines.get(LOGS_TABLE, "").replace(" ", "")
        if not (distributed.startswith("Distributed(") and distributed.endswith(",cityHash64(fractal_id))")):
            raise LogStoreError(
                f"{database()}.{LOGS_TABLE} on {where} must be Distributed({cluster.cluster_name()}, {database()}, "
                f"{data}, cityHash64(fractal_id)) so that each fractal lives on one shard; it is "
                f"{engines.get(LOGS_TABLE, 'missing')[:200]}."
            )


def stored_timestamp_type() -> str:
    """The type of the timestamp column the fractals' rows are kept in, on the current server: a table
    created before an upgrade keeps its type (DateTime on a current release), and what is attached to
    it must have the same."""
    query = "SELECT type FROM system.columns WHERE database = %(db)s AND table = %(table)s AND name = 'timestamp'"
    rows = execute(query, {"db": database(), "table": cluster.data_table()})
    return rows[0][0] if rows else timestamp_type(server_version())


def holds_milliseconds(type_name: str) -> bool:
    return type_name.startswith("DateTime64")


def drop_database(name: str) -> None:
    execute(f"DROP DATABASE IF EXISTS {name}{cluster.on_cluster()}", node=configured_node())


def drop_table(table: str) -> None:
    execute(f"DROP TABLE IF EXISTS {database()}.{table}")


def rename_table(old: str, new: str) -> None:
    """Rename atomically: a statement still naming ``old`` fails from then on (see promote.py)."""
    execute(f"RENAME TABLE {database()}.{old} TO {database()}.{new}")


def tables_with_prefix(prefix: str) -> list[str]:
    query = "SELECT name FROM system.tables WHERE database = %(db)s AND startsWith(name, %(prefix)s)"
    return [row[0] for row in execute(query, {"db": database(), "prefix": prefix})]
