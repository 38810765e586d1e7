"""A fractal's rows as archive records: NDJSON that ClickHouse formats itself (JSONEachRow) over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from strix.logstore import cluster
from strix.logstore.client import LogStoreError, LogStoreQueryError, bind, database, server_address
from strix.logstore.http_client import READ_SIZE, dechunk, request, where
from strix.logstore.schema import RECORD_COLUMNS


def stream_records(
    fractal_id: str, start: datetime | None, end: datetime | None, block_size: int = READ_SIZE
) -> Iterator[bytes]:
    """A fractal's rows in ``[start, end)`` as archive records (NDJSON, ClickHouse's JSONEachRow), by time.

    On a sharded cluster the rows are read on the fractal's own shard: the same bytes the Distributed
    ``logs`` would return, without depending on the other shards being up.

    Blocks end on a line boundary. A server error after the response began is appended to the body
    as text by ClickHouse; it is detected here and raised.
    """
    conditions, params = ["fractal_id = %(fid)s"], {"fid": fractal_id}
    if start is not None:
        conditions.append("timestamp >= %(start)s")
        params["start"] = start
    if end is not None:
        conditions.append("timestamp < %(end)s")
        params["end"] = end
    query = (
        f"SELECT {', '.join(RECORD_COLUMNS)} FROM {database()}.{cluster.data_table()} "
        f"WHERE {' AND '.join(conditions)} ORDER BY timestamp FORMAT JSONEachRow"
    )
    node = cluster.owner_node(fractal_id)
    connection, response = request("GET", bind(query, params, node), node=node)
    carry = b""
    try:
        for data in dechunk(response):
            data = carry + data if carry else data
            cut = data.rfind(b"\n") + 1
            carry, data = data[cut:], data[:cut]
            if data:
                _check_last_line(data)
                yield data
    except OSError as e:
        raise LogStoreError(f"{where(node)} broke off the row stream: {e.__class__.__name__}: {e}") from e
    finally:
        connection.close()
    if carry:
        _check_last_line(carry + b"\n")
        raise LogStoreQueryError(f"ClickHouse ended the row stream mid-line: {carry[:200]!r}")


def _check_last_line(block: bytes) -> None:
    start = block.rfind(b"\n", 0, len(block) - 1) + 1
    if block[start : start + 1] != b"{":
        message = block[start:].decode("utf-8", "replace").strip()
        raise LogStoreQueryError(f"ClickHouse at {server_address()} failed while streaming rows: {message[:500]}")
