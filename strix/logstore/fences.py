"""Destructive statements on the ``logs`` table, fenced so that a stale worker's statement is a no-op.

A worker may pause anywhere, even between proving in PostgreSQL that it still holds its fractal and
sending ClickHouse a DELETE. So ClickHouse checks the claim itself: every owner of a fractal records
its fence (a number that only grows) in ``claim_fences`` before it writes, and every DELETE carries
the condition "the highest fence recorded for this fractal is mine". A DELETE sent late by a worker
whose job was taken over therefore matches no row. One sent before the takeover is legitimate; a
mutation only ever touches parts that existed when it was submitted, so it cannot reach rows that a
later owner attaches or inserts.
"""

from __future__ import annotations

import logging
import random
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from strix.logstore import cluster
from strix.logstore.client import (
    LogStoreError,
    LogStoreQueryError,
    LogStoreTimeout,
    Node,
    current_node,
    database,
    execute,
    pinned_to,
    server_address,
    server_version,
    statement_bound,
)
from strix.logstore.schema import FENCES_TABLE, ensure_fence_table, mutation_settings

log = logging.getLogger(__name__)

# A fence reaches every replica within this many milliseconds, or the claim is not taken.
QUORUM_TIMEOUT_MS = 10_000
# ClickHouse takes one quorum insert per table at a time (code 286 for the others): retried this long.
QUORUM_BUSY_SECONDS = 30.0
QUORUM_BUSY, QUORUM_LOST, QUORUM_SHORT = 286, 319, 285


class FenceNotRecorded(LogStoreError):
    """A fence did not reach every replica: the claim it belongs to must not be used."""


def record_fence(fractal_id: str, fence: int) -> None:
    """Make ``fence`` the fractal's owner in ClickHouse: any lower fence's DELETE matches nothing."""
    record_fences({fractal_id: fence})


def record_fences(fences: dict[str, int]) -> None:
    """:func:`record_fence` for many fractals in one insert per server (a retention batch): one part,
    not one each.

    On a cluster the insert returns only once every replica of the shard holds the fence
    (``insert_quorum``): a DELETE evaluates its fence condition on each replica as it runs there, so a
    replica without the fence would delete nothing, or only some parts, while the mutation is reported
    done. Raises :class:`FenceNotRecorded` if a replica is missing or slow: the claim is then unusable.
    """
    by_node: dict[Node, list[tuple[str, int]]] = defaultdict(list)
    for fractal_id, fence in fences.items():
        by_node[cluster.owner_node(fractal_id)].append((fractal_id, int(fence)))
    for node, rows in by_node.items():
        with pinned_to(node):
            ensure_fence_table()
            _insert_fences(rows)


def _insert_fences(rows: list[tuple[str, int]]) -> None:
    statement = f"INSERT INTO {database()}.{FENCES_TABLE} (fractal_id, fence) VALUES"
    replicas = _fence_replicas() if cluster.replicated() else 1
    if replicas < 2:
        execute(statement, rows)
        return
    quorum = {"insert_quorum": replicas, "insert_quorum_timeout": QUORUM_TIMEOUT_MS}
    deadline = time.monotonic() + QUORUM_BUSY_SECONDS
    while True:
        try:
            execute(statement, rows, settings=quorum)
            return
        except LogStoreQueryError as e:
            if e.code == QUORUM_BUSY and time.monotonic() < deadline:
                time.sleep(random.uniform(0.05, 0.3))  # another claim's fence is being recorded
                continue
            if e.code in (QUORUM_BUSY, QUORUM_LOST, QUORUM_SHORT):
                raise FenceNotRecorded(
                    f"the claim's fence did not reach all {replicas} replicas of ClickHouse at {server_address()} "
                    f"({e}); nothing was changed. Check that every replica is up and replicating, then retry."
                ) from e
            raise


def _fence_replicas() -> int:
    query = "SELECT total_replicas FROM system.replicas WHERE database = %(db)s AND table = %(table)s"
    rows = execute(query, {"db": database(), "table": FENCES_TABLE})
    return int(rows[0][0]) if rows else 1


def current_fence(fractal_id: str) -> int:
    query = f"SELECT max(fence) FROM {database()}.{FENCES_TABLE} WHERE fractal_id = %(fid)s"
    return int(execute(query, {"fid": fractal_id}, node=cluster.owner_node(fractal_id))[0][0] or 0)


def _owned_by(tag: str) -> str:
    """The condition "the highest fence recorded for the fractal is this one", on the parameters
    ``fid{tag}`` and ``fence{tag}``."""
    return f"(SELECT max(fence) FROM {database()}.{FENCES_TABLE} WHERE fractal_id = %(fid{tag})s) = %(fence{tag})s"


def delete_rows(fractal_id: str, fence: int, timeout: float = 3600) -> None:
    """Delete all of a fractal's rows, if ``fence`` still owns it; wait until the deletion is done."""
    delete_windows([Deletion(fractal_id, fence, ((None, None),))], timeout)


@dataclass(frozen=True)
class Deletion:
    """One fractal's rows to delete: its time windows ``[start, end)``, only rows ingested before
    ``ingested_before`` (None: whatever their ingest time), only while ``fence`` owns the fractal."""

    fractal_id: str
    fence: int
    windows: tuple[tuple[datetime | None, datetime | None], ...]
    ingested_before: datetime | None = None

    def condition(self, tag: str, fenced: bool = True) -> tuple[str, dict]:
        """The condition and its parameters, named with ``tag`` so that many fit in one statement;
        ``fenced``: only while the deletion's fence owns the fractal."""
        params = {f"fid{tag}": self.fractal_id}
        windows = []
        for i, (start, end) in enumerate(self.windows):
            bounds = []
            if start is not None:
                bounds.append(f"timestamp >= %(start{tag}_{i})s")
                params[f"start{tag}_{i}"] = start
            if end is not None:
                bounds.append(f"timestamp < %(end{tag}_{i})s")
                params[f"end{tag}_{i}"] = end
            windows.append(f"({' AND '.join(bounds) or '1'})")
        ingested = ""
        if self.ingested_before is not None:
            ingested = f" AND ingest_timestamp < %(ingested{tag})s"
            params[f"ingested{tag}"] = self.ingested_before
        owned = ""
        if fenced:
            owned = f" AND {_owned_by(tag)}"
            params[f"fence{tag}"] = int(self.fence)
        return f"(fractal_id = %(fid{tag})s AND ({' OR '.join(windows)}){ingested}{owned})", params


def rows_left(deletion: Deletion) -> int:
    """How many rows the deletion's windows still hold (its fence aside): 0 once it is proved done."""
    condition, params = deletion.condition("", fenced=False)
    query = f"SELECT count() FROM {database()}.{cluster.data_table()} WHERE {condition}"
    return int(execute(query, params, node=cluster.owner_node(deletion.fractal_id))[0][0])


# A mutation's statement stays well under ClickHouse's max_query_size (256 KiB by default).
MAX_DELETE_STATEMENT = 64 * 1024


def delete_windows(deletions: list[Deletion], timeout: float = 3600) -> int:
    """Delete many fractals' windows in as few mutations as fit in a statement, each fractal's part
    fenced by its own owner; wait until they are done. Returns the mutations submitted.

    A mutation rewrites every part it may touch, whatever share of it matches: with many fractals' rows
    in the same monthly parts, one mutation for a hundred fractals costs about what one for a single
    fractal did."""
    by_node: dict[Node, list[Deletion]] = defaultdict(list)
    for deletion in deletions:
        if deletion.windows:
            by_node[cluster.owner_node(deletion.fractal_id)].append(deletion)
    statements = 0
    for node, on_node in by_node.items():  # on a sharded cluster, each shard deletes its own fractals'
        with pinned_to(node):
            statements += _delete_on_current_node(on_node, timeout)
    return statements


def _delete_on_current_node(deletions: list[Deletion], timeout: float) -> int:
    table = cluster.data_table()
    statements, conditions, params, size = 0, [], {}, 0
    for index, deletion in enumerate(deletions):
        condition, values = deletion.condition(str(index))
        if conditions and size + len(condition) > MAX_DELETE_STATEMENT:
            _submit_delete(table, conditions, params)
            statements, conditions, params, size = statements + 1, [], {}, 0
        conditions.append(condition)
        params.update(values)
        size += len(condition) + 4 + 40 * len(values)  # each parameter's value is about 40 characters
    if conditions:
        _submit_delete(table, conditions, params)
        statements += 1
    if statements:
        wait_for_mutations(table, timeout)
    return statements


def _submit_delete(table: str, conditions: list[str], params: dict) -> None:
    statement = f"ALTER TABLE {database()}.{table} DELETE WHERE {' OR '.join(conditions)}"
    execute(statement, params, settings=mutation_settings(server_version()))


def delete_window(
    fractal_id: str,
    fence: int,
    start: datetime | None,
    end: datetime | None,
    ingested_before: datetime | None = None,
    timeout: float = 3600,
) -> None:
    """Delete a fractal's rows in ``[start, end)`` (an open bound when None), only those ingested before
    ``ingested_before`` if given, if ``fence`` still owns it; wait until the deletion is done."""
    delete_windows([Deletion(fractal_id, fence, ((start, end),), ingested_before)], timeout)


# A wait for mutations longer than this is reported in the log, and again after as long.
MUTATION_WAIT_REPORT_SECONDS = 30


def wait_for_mutations(table: str, timeout: float = 3600) -> None:
    """Block until no mutation of ``table`` is pending; mutations are asynchronous on every release.

    On a replicated table "nothing pending" is not enough: a replica that restarted moments ago lists
    no mutation at all, done or not, until it has loaded its queue from ZooKeeper. So first the replica
    must be serving its queue, then it must list the newest mutation ZooKeeper holds for the table
    (the one just submitted, or a later one), and only then does "nothing pending" count."""
    bound = statement_bound()
    started = time.monotonic()
    deadline = started + (min(timeout, bound) if bound else timeout)
    newest = _newest_replicated_mutation(table, deadline) if _is_replicated(table) else ""
    query = (
        "SELECT countIf(is_done = 0), countIf(mutation_id >= %(newest)s), any(latest_fail_reason) "
        "FROM system.mutations WHERE database = %(db)s AND table = %(table)s"
    )
    if not _mutations_report_failures():
        query = query.replace("any(latest_fail_reason)", "''")
    params = {"db": database(), "table": table, "newest": newest}
    pause = 0.01  # most deletions finish within tens of milliseconds: look again soon, then less often
    reported = started
    while True:
        pending, listed, failure = execute(query, params)[0]
        if not pending and (listed or not newest):
            return
        if failure:
            raise LogStoreQueryError(f"ClickHouse at {server_address()} failed a deletion: {failure}")
        waiting = "finish deleting rows" if listed or not newest else f"list its deletion {newest}"
        now = time.monotonic()
        if now > deadline:
            raise LogStoreTimeout(
                f"ClickHouse at {server_address()} did not {waiting} within {deadline - started:.0f}s."
            )
        if now - reported >= MUTATION_WAIT_REPORT_SECONDS:  # a long wait says what it waits for
            reported = now
            log.warning(
                "still waiting for ClickHouse at %s to %s of %s (%d mutations pending, %.0fs of at most %.0fs)",
                server_address(), waiting, table, pending, now - started, deadline - started,
            )  # fmt: skip
        time.sleep(pause)
        pause = min(pause * 2, 0.5)


def _is_replicated(table: str) -> bool:
    return cluster.replicated() and table == cluster.data_table()


def _newest_replicated_mutation(table: str, deadline: float) -> str:
    """The newest mutation ZooKeeper holds for ``table``, once the replica serves its queue.

    A replica restarted within its ZooKeeper session timeout accepts statements but neither lists nor
    runs mutations until it has read its queue; ``last_queue_update`` stays zero until then."""
    query = (
        "SELECT is_readonly, toUInt32(last_queue_update), zookeeper_path FROM system.replicas "
        "WHERE database = %(db)s AND table = %(table)s"
    )
    pause = 0.05
    while True:
        rows = execute(query, {"db": database(), "table": table})
        if not rows:
            raise LogStoreError(f"{database()}.{table} on ClickHouse at {server_address()} is not a replicated table.")
        readonly, queue_updated, path = rows[0]
        if not readonly and queue_updated:
            break
        if time.monotonic() > deadline:
            raise LogStoreTimeout(
                f"the replica of {database()}.{table} at {server_address()} is not serving its replication queue "
                "(read-only or just restarted); check its connection to ZooKeeper."
            )
        time.sleep(pause)
        pause = min(pause * 2, 0.5)
    newest = "SELECT max(name) FROM system.zookeeper WHERE path = %(path)s"
    return execute(newest, {"path": f"{path}/mutations"})[0][0] or ""


_failure_column: dict[str, bool] = {}


def _mutations_report_failures() -> bool:
    """Whether system.mutations has latest_fail_reason (newer servers), asked once per server."""
    address = server_address(current_node())
    if address not in _failure_column:
        columns = {row[0] for row in execute("DESCRIBE TABLE system.mutations")}
        _failure_column[address] = "latest_fail_reason" in columns
    return _failure_column[address]
