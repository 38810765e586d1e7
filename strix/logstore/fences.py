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

import time
from dataclasses import dataclass
from datetime import datetime

from strix.logstore.client import (
    LogStoreQueryError,
    LogStoreTimeout,
    database,
    execute,
    server_address,
    statement_bound,
)
from strix.logstore.schema import LOGS_TABLE

FENCES_TABLE = "claim_fences"


def ensure_fence_table() -> None:
    execute(
        f"CREATE TABLE IF NOT EXISTS {database()}.{FENCES_TABLE} (fractal_id String, fence UInt64, "
        "recorded_at DateTime('UTC') DEFAULT now()) ENGINE = MergeTree ORDER BY (fractal_id, fence)"
    )


def record_fence(fractal_id: str, fence: int) -> None:
    """Make ``fence`` the fractal's owner in ClickHouse: any lower fence's DELETE matches nothing."""
    record_fences({fractal_id: fence})


def record_fences(fences: dict[str, int]) -> None:
    """:func:`record_fence` for many fractals in one insert (a retention batch): one part, not one each."""
    ensure_fence_table()
    rows = [(fractal_id, int(fence)) for fractal_id, fence in fences.items()]
    execute(f"INSERT INTO {database()}.{FENCES_TABLE} (fractal_id, fence) VALUES", rows)


def current_fence(fractal_id: str) -> int:
    query = f"SELECT max(fence) FROM {database()}.{FENCES_TABLE} WHERE fractal_id = %(fid)s"
    return int(execute(query, {"fid": fractal_id})[0][0] or 0)


def _owned_by(tag: str) -> str:
    """The condition "the highest fence recorded for the fractal is this one", on the parameters
    ``fid{tag}`` and ``fence{tag}``."""
    return f"(SELECT max(fence) FROM {database()}.{FENCES_TABLE} WHERE fractal_id = %(fid{tag})s) = %(fence{tag})s"


def delete_rows(fractal_id: str, fence: int, timeout: float = 3600) -> None:
    """Delete all of a fractal's rows, if ``fence`` still owns it; wait until the deletion is done."""
    execute(
        f"ALTER TABLE {database()}.{LOGS_TABLE} DELETE WHERE fractal_id = %(fid)s AND {_owned_by('')}",
        {"fid": fractal_id, "fence": int(fence)},
    )
    wait_for_mutations(LOGS_TABLE, timeout)


@dataclass(frozen=True)
class Deletion:
    """One fractal's rows to delete: its time windows ``[start, end)``, only rows ingested before
    ``ingested_before`` (None: whatever their ingest time), only while ``fence`` owns the fractal."""

    fractal_id: str
    fence: int
    windows: tuple[tuple[datetime | None, datetime | None], ...]
    ingested_before: datetime | None = None

    def condition(self, tag: str) -> tuple[str, dict]:
        """The condition and its parameters, named with ``tag`` so that many fit in one statement."""
        params = {f"fid{tag}": self.fractal_id, f"fence{tag}": int(self.fence)}
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
        sql = f"(fractal_id = %(fid{tag})s AND ({' OR '.join(windows)}){ingested} AND {_owned_by(tag)})"
        return sql, params


# A mutation's statement stays well under ClickHouse's max_query_size (256 KiB by default).
MAX_DELETE_STATEMENT = 64 * 1024


def delete_windows(deletions: list[Deletion], timeout: float = 3600) -> int:
    """Delete many fractals' windows in as few mutations as fit in a statement, each fractal's part
    fenced by its own owner; wait until they are done. Returns the mutations submitted.

    A mutation rewrites every part it may touch, whatever share of it matches: with many fractals' rows
    in the same monthly parts, one mutation for a hundred fractals costs about what one for a single
    fractal did."""
    statements, conditions, params, size = 0, [], {}, 0
    for index, deletion in enumerate(deletions):
        if not deletion.windows:
            continue
        condition, values = deletion.condition(str(index))
        if conditions and size + len(condition) > MAX_DELETE_STATEMENT:
            _submit_delete(conditions, params)
            statements, conditions, params, size = statements + 1, [], {}, 0
        conditions.append(condition)
        params.update(values)
        size += len(condition) + 4 + 40 * len(values)  # each parameter's value is about 40 characters
    if conditions:
        _submit_delete(conditions, params)
        statements += 1
    if statements:
        wait_for_mutations(LOGS_TABLE, timeout)
    return statements


def _submit_delete(conditions: list[str], params: dict) -> None:
    execute(f"ALTER TABLE {database()}.{LOGS_TABLE} DELETE WHERE {' OR '.join(conditions)}", params)


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


def wait_for_mutations(table: str, timeout: float = 3600) -> None:
    """Block until no mutation of ``table`` is pending; mutations are asynchronous on every release."""
    bound = statement_bound()
    started = time.monotonic()
    deadline = started + (min(timeout, bound) if bound else timeout)
    query = (
        "SELECT count(), any(latest_fail_reason) FROM system.mutations "
        "WHERE database = %(db)s AND table = %(table)s AND is_done = 0"
    )
    if not _mutations_report_failures():
        query = query.replace("any(latest_fail_reason)", "''")
    pause = 0.01  # most deletions finish within tens of milliseconds: look again soon, then less often
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
        time.sleep(pause)
        pause = min(pause * 2, 0.5)


_failure_column: dict[str, bool] = {}


def _mutations_report_failures() -> bool:
    """Whether system.mutations has latest_fail_reason (newer servers), asked once per server."""
    address = server_address()
    if address not in _failure_column:
        columns = {row[0] for row in execute("DESCRIBE TABLE system.mutations")}
        _failure_column[address] = "latest_fail_reason" in columns
    return _failure_column[address]
