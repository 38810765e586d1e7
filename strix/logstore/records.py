"""A fractal's rows as archive records: NDJSON that ClickHouse formats itself (JSONEachRow) over HTTP."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime

from strix.bytesearch import DAY_ROW, ROW_START
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


def records_by_day(blocks: Iterable[bytes]) -> Iterator[tuple[str, bytes | memoryview]]:
    """A time-ordered row stream (blocks cut anywhere) as whole records, each buffer of one UTC day:
    ``(day, buffer)`` pairs, the days never decreasing.

    One query can then read several days: each day of an archive is its own zstd frame, begun where
    its first row is. Per block, the line cut by the block before is completed (one line copied);
    the rest is handed on as views of the block, cut where a day's last row ends (found from the
    block's end backwards, so a block of one day costs two short searches)."""
    tail, last_day = b"", ""

    def in_order(day: str) -> str:
        nonlocal last_day
        if day < last_day:
            raise LogStoreQueryError(f"ClickHouse sent a row of {day} after one of {last_day}: rows out of time order")
        last_day = day
        return day

    for block in blocks:
        first_end = block.find(b"\n") + 1
        if not first_end:
            tail += block
            continue
        head = tail + block[:first_end]  # the line the block before had cut
        yield in_order(_day_of(head, 0)), head
        lines_end = block.rfind(b"\n") + 1
        tail = block[lines_end:]
        view = memoryview(block)
        position = first_end
        while position < lines_end:
            day = in_order(_day_of(block, position))
            last_start = block.rfind(b"\n", position, lines_end - 1) + 1 or position
            if _day_of(block, last_start) == day:
                yield day, view[position:lines_end]
                break
            # The day's last row: its line starts after the newline at ``position - 1`` or a later one.
            last_of_day = block.rfind(b"\n" + ROW_START + day.encode(), position - 1, lines_end) + 1
            if last_of_day < position:
                raise LogStoreQueryError(f"the row stream's day {day} could not be cut from the next one")
            end = block.find(b"\n", last_of_day, lines_end) + 1
            yield day, view[position:end]
            position = end
    if tail:
        raise LogStoreQueryError(f"ClickHouse ended the row stream mid-line: {tail[:200]!r}")


def _day_of(buffer: bytes, at: int) -> str:
    """The UTC day (YYYY-MM-DD) of the record that begins at ``buffer[at]``."""
    if not buffer.startswith(ROW_START, at) or len(buffer) < at + DAY_ROW:
        line = bytes(buffer[at : at + 200]).decode("utf-8", "replace")
        raise LogStoreQueryError(f"ClickHouse sent a row that does not begin with its timestamp: {line}")
    return buffer[at + len(ROW_START) : at + DAY_ROW].decode("ascii", "replace")
