"""Where a fractal's rows live when ClickHouse runs as a cluster (``STRIX_CLICKHOUSE_CLUSTER``).

Three layouts, told apart by ``system.clusters``:

- **one server** (no cluster name): ``logs`` and ``claim_fences`` are MergeTree tables.
- **replicated** (a cluster of one shard): both are ReplicatedMergeTree, created ``ON CLUSTER``;
  every statement goes to the replica ``STRIX_CLICKHOUSE_URL`` names.
- **sharded** (several shards): rows are kept in ``logs_local`` (ReplicatedMergeTree on each shard),
  and ``logs`` is a Distributed table over it, sharded by ``cityHash64(fractal_id)``, so that each
  fractal lives on one shard. Whatever the product does to a fractal's rows it does on that shard,
  against ``logs_local`` and the shard's own ``claim_fences``: ClickHouse refuses mutations on a
  Distributed table and ``ATTACH PARTITION … ON CLUSTER``.

A sequence of statements that must see its own writes (a restore: staging table, counts, clear,
attach) runs on one replica, never through a load balancer: :func:`serving` pins it there.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass

from django.conf import settings

from strix.logstore.client import (
    LogStoreError,
    Node,
    _pinned_node,
    configured_node,
    execute,
    pinned_to,
)

LOGS_TABLE = "logs"  # where Strix's ingest writes rows (the Distributed table when sharded)
SHARDED_DATA_TABLE = "logs_local"
# How long a process trusts what it read of system.clusters.
TOPOLOGY_SECONDS = 30.0


@dataclass(frozen=True)
class Shard:
    number: int
    weight: int
    replicas: tuple[Node, ...]

    def preferred_replica(self) -> Node:
        """STRIX_CLICKHOUSE_URL's server when it is one of the shard's replicas, else the first listed."""
        configured = configured_node()
        for node in self.replicas:
            if (node.host, node.port) == (configured.host, configured.port):
                return configured
        return self.replicas[0]


def cluster_name() -> str:
    return settings.STRIX_CLICKHOUSE_CLUSTER["name"]


def on_cluster() -> str:
    """`` ON CLUSTER <name>`` for DDL that every server must run, or nothing on one server."""
    name = cluster_name()
    return f" ON CLUSTER {name}" if name else ""


_topologies: dict[tuple, tuple[float, tuple[Shard, ...]]] = {}


def shards() -> tuple[Shard, ...]:
    """The cluster's shards and their replicas, from system.clusters; () on one server."""
    name = cluster_name()
    if not name:
        return ()
    configured = configured_node()
    key = (str(configured), name)
    cached = _topologies.get(key)
    if cached and cached[0] > time.monotonic():
        return cached[1]
    rows = execute(
        "SELECT shard_num, shard_weight, host_name, port FROM system.clusters WHERE cluster = %(name)s "
        "ORDER BY shard_num, replica_num",
        {"name": name},
        node=configured,
    )
    if not rows:
        raise LogStoreError(
            f"STRIX_CLICKHOUSE_CLUSTER={name}, but ClickHouse at {configured} has no such cluster in "
            "system.clusters; set it to one of its <remote_servers>, or leave it empty for one server."
        )
    http_ports = settings.STRIX_CLICKHOUSE_CLUSTER["http_ports"]
    grouped: dict[int, tuple[int, list[Node]]] = {}
    for number, weight, host, port in rows:
        node = Node(host, int(port), http_ports.get((host, int(port)), configured.http_port))
        grouped.setdefault(int(number), (int(weight), []))[1].append(node)
    topology = tuple(Shard(number, weight, tuple(nodes)) for number, (weight, nodes) in grouped.items())
    _topologies[key] = (time.monotonic() + TOPOLOGY_SECONDS, topology)
    return topology


def replicated() -> bool:
    return bool(cluster_name())


def sharded() -> bool:
    return len(shards()) > 1


def data_table() -> str:
    """The table a fractal's rows are in, on the server that owns it (``logs`` but when sharded)."""
    return SHARDED_DATA_TABLE if sharded() else LOGS_TABLE


_owners: dict[tuple, int] = {}


def owner_shard(fractal_id: str) -> Shard:
    """The shard a Distributed ``logs`` sends the fractal's rows to: the one whose weight range holds
    ``cityHash64(fractal_id) % (sum of weights)``, in system.clusters order, as ClickHouse routes them."""
    topology = shards()
    total = sum(shard.weight for shard in topology)
    key = (cluster_name(), fractal_id, total)
    if key not in _owners:
        query = "SELECT modulo(cityHash64(%(fid)s), %(total)s)"
        _owners[key] = int(execute(query, {"fid": fractal_id, "total": total}, node=configured_node())[0][0])
    slot = _owners[key]
    for shard in topology:
        if slot < shard.weight:
            return shard
        slot -= shard.weight
    raise LogStoreError(f"no shard of cluster {cluster_name()} takes slot {_owners[key]}")  # weights changed


def owner_node(fractal_id: str) -> Node:
    """The server to send a fractal's statements to: the pinned one inside :func:`serving`, else the
    preferred replica of the fractal's shard (STRIX_CLICKHOUSE_URL's server unless sharded)."""
    pinned = _pinned_node.get()
    if pinned is not None:
        return pinned
    if not sharded():
        return configured_node()
    return owner_shard(fractal_id).preferred_replica()


@contextmanager
def serving(fractal_id: str):
    """Run a sequence of statements about one fractal on one server (its shard's preferred replica);
    inside an outer :func:`serving` the outer server is kept."""
    with pinned_to(owner_node(fractal_id)) as node:
        yield node


def every_shard() -> list[Node]:
    """One server per shard (its preferred replica): where housekeeping must look, e.g. for staging tables."""
    topology = shards()
    return [shard.preferred_replica() for shard in topology] if topology else [configured_node()]
