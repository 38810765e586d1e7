"""A fractal's rows as archive records: NDJSON that ClickHouse formats itself (JSONEachRow) over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from strix.logstore import cluster
from strix.logstore.client import LogStoreError, LogStoreQueryError, bind, database, server_address
from strix.logstore.http_client import SentRequest, dechunk, send, where
from strix.logstore.schema import RECORD_COLUMNS


def stream_records(fractal_id: str, start: datetime | None, end: datetime | None) -> Iterator[bytes]:
    """A fractal's rows in ``[start, end)`` as archive records (NDJSON, ClickHouse's JSONEachRow), by time.

    On a sharded cluster the rows are read on the fractal's own shard: the same bytes the Distributed
    ``logs`` would return, without depending on the other shards being up.

    Blocks are cut where the socket cut them, not on line boundaries (nothing is copied to align
    them: an archive only counts and compresses them). A server error after the response began is
    appended to the body as text by ClickHouse: each block's last complete line is checked to be a
    record before the block is handed on, and the stream must end with a whole line.
    """
    yield from _read_records(_send_query(fractal_id, start, end))


class RecordStreams:
    """A fractal's row streams, window after window, the next one's query sent ahead when asked.

    ClickHouse reads and sorts a window's rows before it sends the first (50–90 ms for a day of
    33,000 rows here, while the archive's compression waits): a query sent while the window before
    is still being read has its rows ready when they are wanted. Only the query goes ahead: its rows
    wait in the server, held back by the unread socket, so memory stays flat on this side."""

    def __init__(self, fractal_id: str):
        self.fractal_id = fractal_id
        self._ahead: tuple[tuple, SentRequest] | None = None

    def send_ahead(self, start: datetime | None, end: datetime | None) -> None:
        if self._ahead is None:
            self._ahead = ((start, end), _send_query(self.fractal_id, start, end))

    def stream(self, start: datetime | None, end: datetime | None) -> Iterator[bytes]:
        """:func:`stream_records` of the window, through the query sent ahead for it if there is one."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None and ahead[0] != (start, end):
            ahead[1].close()
            ahead = None
        return _read_records(ahead[1] if ahead else _send_query(self.fractal_id, start, end))

    def close(self) -> None:
        if self._ahead is not None:
            self._ahead[1].close()
            self._ahead = None

    def __enter__(self) -> RecordStreams:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _send_query(fractal_id: str, start: datetime | None, end: datetime | None) -> SentRequest:
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
    return send("GET", bind(query, params, node), node=node)


def _read_records(sent: SentRequest) -> Iterator[bytes]:
    try:
        connection, response = sent.response()
        tail = b""  # the stream's unterminated last line so far
        for data in dechunk(response):
            line_end = data.rfind(b"\n") + 1  # after the block's last complete line
            if line_end:
                line_start = data.rfind(b"\n", 0, line_end - 1) + 1
                _check_record(data[line_start:line_end] if line_start else tail + data[:line_end])
                tail = data[line_end:]
            else:
                tail += data
            yield data
    except OSError as e:
        raise LogStoreError(f"{where(sent.node)} broke off the row stream: {e.__class__.__name__}: {e}") from e
    finally:
        sent.close()
    if tail:
        _check_record(tail)
        raise LogStoreQueryError(f"ClickHouse ended the row stream mid-line: {tail[:200]!r}")


def _check_record(line: bytes) -> None:
    """A line of the stream is a record, not the text of an error the server appended."""
    if line[:1] != b"{":
        message = line.decode("utf-8", "replace").strip()
        raise LogStoreQueryError(f"ClickHouse at {server_address()} failed while streaming rows: {message[:500]}")
