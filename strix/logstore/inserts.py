"""Bulk NDJSON inserts over ClickHouse's HTTP interface, on several streams, with every wait bounded.

ClickHouse 18.16 parses one INSERT's JSON on one thread, so whole records are dealt round-robin to
``streams`` concurrent INSERTs and the server parses on every core (row order does not matter in a
MergeTree). The caller's thread reads the source and deals; each stream's thread only sends. So an
error of the source (a damaged archive) is raised in the caller's thread as it is, and an error of a
stream (ClickHouse rejected a record) reaches the caller at its next hand-over, within a second:
nobody waits on a queue or a socket without a bound.
"""

from __future__ import annotations

import bisect
import queue
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator

from strix.bytesearch import count_lines
from strix.logstore.client import LogStoreError, LogStoreQueryError, Node, current_node, database, execute
from strix.logstore.http_client import request
from strix.logstore.schema import RECORD_COLUMNS, holds_milliseconds

POLL_SECONDS = 0.5
# A stream that accepts nothing for this long is broken off: ClickHouse stopped reading.
STALL_SECONDS = 120.0

_END = object()
_ROW_IN_ERROR = re.compile(r"\(at row (\d+)\)")


class RecordRejected(LogStoreQueryError):
    """ClickHouse refused a record; ``line`` is its line number in the whole NDJSON stream (from 1)."""

    def __init__(self, line: int, reason: str):
        super().__init__(f"record on line {line} was rejected: {reason}")
        self.line = line


class PrecisionLost(LogStoreQueryError):
    """A record's timestamp has milliseconds the target table (whole seconds) would silently drop."""


# A timestamp with a fraction that is not all zeros ("…12:00:00.123"): a DateTime column drops it.
_FRACTION = re.compile(rb'timestamp":"[^"]{19}\.[0-9]*[1-9]')


def _refuse_fractions(pieces: Iterator[tuple[tuple, int]], table: str, type_name: str):
    """Pass the pieces on; raise :class:`PrecisionLost` at the first timestamp with milliseconds."""
    line = 1
    for piece, rows in pieces:
        for buffer in piece:
            match = _FRACTION.search(buffer)
            if match:
                found = bytes(buffer[match.start() : match.end() + 4]).decode("utf-8", "replace")
                raise PrecisionLost(
                    f"the records hold millisecond timestamps (near line {line}: {found}…), but {table} stores "
                    f"{type_name}, whole seconds: restoring would change them. Restore into a Strix whose "
                    "ClickHouse is 20.1 or later (DateTime64), where they are kept exactly.",
                )
        yield piece, rows
        line += rows


class _Aborted(Exception):
    pass


class _Stream:
    """One HTTP INSERT fed from a bounded queue by the caller's thread."""

    def __init__(self, table: str, index: int, failed: threading.Event, node: Node):
        self.table = table
        self.node = node  # the caller's (a thread does not inherit the caller's pinned server)
        self.queue: queue.Queue = queue.Queue(maxsize=4)
        self.failed = failed
        self.error: BaseException | None = None
        self.aborted = False
        self.connection = None
        # (first row of a piece within this stream, its line in the whole stream), to name a bad line.
        self.piece_starts: list[int] = []
        self.piece_lines: list[int] = []
        self.rows = 0
        self.thread = threading.Thread(target=self._run, name=f"logstore-insert-{index}", daemon=True)
        self.thread.start()

    def put(self, piece: tuple, first_line: int, rows: int) -> None:
        self.piece_starts.append(self.rows)
        self.piece_lines.append(first_line)
        self.rows += rows
        self._hand_over(piece)

    def finish(self) -> None:
        self._hand_over(_END)

    def _hand_over(self, item) -> None:
        deadline = time.monotonic() + STALL_SECONDS
        while True:
            if self.failed.is_set():
                raise _Aborted()
            try:
                self.queue.put(item, timeout=POLL_SECONDS)
                return
            except queue.Full:
                if time.monotonic() > deadline:
                    raise LogStoreError(
                        f"ClickHouse accepted no rows for {STALL_SECONDS:.0f}s on insert stream {self.thread.name}; "
                        "the insert was broken off."
                    ) from None

    def _body(self) -> Iterator[tuple]:
        while True:
            try:
                item = self.queue.get(timeout=POLL_SECONDS)
            except queue.Empty:
                if self.aborted:
                    raise _Aborted() from None
                continue
            if item is _END:
                return
            yield item

    def _run(self) -> None:
        query = f"INSERT INTO {database()}.{self.table} ({', '.join(RECORD_COLUMNS)}) FORMAT JSONEachRow"
        try:
            # best_effort reads both whole seconds and milliseconds, whichever server wrote the archive.
            connection, response = request(
                "POST", query, body=self._body(), on_connect=self._connected, timeout=STALL_SECONDS,
                node=self.node, date_time_input_format="best_effort",
            )  # fmt: skip
            try:
                response.read()
            finally:
                connection.close()
        except _Aborted:
            pass
        except BaseException as e:
            self.error = self._name_line(e)
            self.failed.set()

    def _connected(self, connection) -> None:
        self.connection = connection

    def _name_line(self, error: BaseException) -> BaseException:
        match = _ROW_IN_ERROR.search(str(error))
        if not match or not self.piece_starts:
            return error
        row = int(match.group(1)) - 1  # 0-based within this stream
        piece = bisect.bisect_right(self.piece_starts, row) - 1
        line = self.piece_lines[piece] + (row - self.piece_starts[piece])
        reason = str(error).split("DB::Exception: ", 1)[-1].split(": (at row", 1)[0]
        return RecordRejected(line, reason[:300])

    def abort(self) -> None:
        """Break the INSERT off: ClickHouse drops what it had not committed, the thread ends at once."""
        self.aborted = True
        sock = getattr(self.connection, "sock", None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def join(self, deadline: float) -> None:
        self.thread.join(max(deadline - time.monotonic(), 0))
        if self.thread.is_alive():
            self.abort()
            raise LogStoreError(f"insert stream {self.thread.name} did not finish within {STALL_SECONDS:.0f}s.")


def _line_pieces(blocks: Iterable[bytes], rows_counted: Callable[[], int] | None) -> Iterator[tuple[tuple, int]]:
    """Re-cut a byte stream into pieces that end on a line boundary (whole records), with their rows.

    A piece is the previous block's unterminated tail and this block up to its last newline, as two
    buffers (never joined: see http_client._chunked), so it holds exactly this block's newlines: the
    source's own running count (``rows_counted``) gives them without counting again."""
    carry, counted = b"", 0
    for block in blocks:
        if rows_counted is None:
            rows = count_lines(block)
        else:
            total = rows_counted()
            rows, counted = total - counted, total
        cut = block.rfind(b"\n") + 1
        if cut:
            yield (carry, memoryview(block)[:cut]), rows
            carry = block[cut:]
        else:
            carry += block
    if carry:
        yield (carry,), 1  # an unterminated last line: ClickHouse reports it as the error it is


def insert_records(
    table: str, blocks: Iterable[bytes], streams: int = 2, rows_counted: Callable[[], int] | None = None
) -> int:
    """Insert NDJSON records into ``table``; returns the lines sent.

    ``rows_counted``, if given, returns how many newlines the source has yielded so far (a reader that
    counts them anyway): the blocks are then not counted a second time.

    ``blocks`` is read in the caller's thread: its own errors propagate unchanged, after every
    stream has been broken off. A record ClickHouse rejects raises :class:`RecordRejected` naming its
    line. What was inserted before a failure stays in ``table``, which the caller drops.
    """
    failed = threading.Event()
    node = current_node()
    pieces = _line_pieces(blocks, rows_counted)
    type_name = _timestamp_type(table)
    if not holds_milliseconds(type_name):
        pieces = _refuse_fractions(pieces, table, type_name)
    pool = [_Stream(table, i, failed, node) for i in range(max(streams, 1))]
    line = 1
    try:
        for index, (piece, rows) in enumerate(pieces):
            pool[index % len(pool)].put(piece, line, rows)
            line += rows
        for stream in pool:
            stream.finish()
        deadline = time.monotonic() + STALL_SECONDS
        for stream in pool:
            stream.join(deadline)
    except BaseException as e:
        for stream in pool:
            stream.abort()
        for stream in pool:
            stream.thread.join(STALL_SECONDS)
        if isinstance(e, _Aborted):
            raise _first_error(pool) from None
        raise
    if failed.is_set():
        raise _first_error(pool)
    return line - 1


def _timestamp_type(table: str) -> str:
    query = "SELECT type FROM system.columns WHERE database = %(db)s AND table = %(table)s AND name = 'timestamp'"
    rows = execute(query, {"db": database(), "table": table})
    return rows[0][0] if rows else "DateTime"


def _first_error(pool: list[_Stream]) -> BaseException:
    errors = [stream.error for stream in pool if stream.error is not None]
    rejected = sorted((e for e in errors if isinstance(e, RecordRejected)), key=lambda e: e.line)
    return (rejected or errors or [LogStoreError("an insert stream failed without an error")])[0]
