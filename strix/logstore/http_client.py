"""Bulk NDJSON streams over ClickHouse's HTTP interface, with the standard library's http.client.

ClickHouse formats and parses ``JSONEachRow`` itself, which is faster than building rows in Python.
Its responses arrive in 4 KiB HTTP chunks; decoding those in http.client cost a third of an archive's
CPU, so :func:`dechunk` reads the socket up to 1 MiB at a time and unframes it itself. Request
bodies are framed here too (:func:`_chunked`): http.client's own framing copies every chunk once more.
"""

from __future__ import annotations

import base64
import http.client
import socket
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from urllib.parse import urlencode

from django.conf import settings

from strix.logstore.client import (
    SERVER_SETTINGS,
    LogStoreError,
    LogStoreQueryError,
    LogStoreUnavailable,
    Node,
    current_node,
    database,
)

READ_SIZE = 1 << 20
# Blocks of a response body handed on: measured, 1 MiB blocks cost more CPU than 128 KiB (likely memory
# leaving the caches between copies); a block per socket read costs more calls.
BLOCK_SIZE = 128 * 1024


def where(node: Node | None = None) -> str:
    node = node or current_node()
    return f"ClickHouse HTTP at {node.host}:{node.http_port}"


def request(*args, **kwargs) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    """:func:`send`, then wait for the response's head."""
    return send(*args, **kwargs).response()


class SentRequest:
    """A request sent, its response not yet awaited: ClickHouse starts the query meanwhile."""

    def __init__(self, connection: http.client.HTTPConnection, node: Node):
        self.connection, self.node = connection, node

    def response(self) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        """Wait for the response's head; a refusal is raised with the server's first line."""
        with _mapped_errors(self.connection, self.node):
            response = self.connection.getresponse()
        if response.status != 200:
            text = response.read(4096).decode("utf-8", "replace").strip().splitlines()
            self.connection.close()
            raise LogStoreQueryError(f"{where(self.node)} refused the query: {text[0] if text else response.status}")
        return self.connection, response

    def close(self) -> None:
        self.connection.close()  # ClickHouse cancels a query whose client went away


def send(
    method: str,
    query: str,
    body=None,
    on_connect=None,
    timeout: float = 600,
    node: Node | None = None,
    **extra_settings,
) -> SentRequest:
    """Send a query (and its body, for an INSERT) to ClickHouse over HTTP; the response is awaited later."""
    cfg = settings.STRIX_CLICKHOUSE
    node = node or current_node()
    connection_class = http.client.HTTPSConnection if cfg["secure"] else http.client.HTTPConnection
    connection = connection_class(node.host, node.http_port, timeout=timeout)
    if on_connect is not None:
        on_connect(connection)
    server_settings = {name: str(value) for name, value in {**SERVER_SETTINGS, **extra_settings}.items()}
    params = urlencode({"query": query, "database": database(), **server_settings})
    credentials = base64.b64encode(f"{cfg['user']}:{cfg['password']}".encode()).decode()
    headers = {"Authorization": f"Basic {credentials}"}
    with _mapped_errors(connection, node):
        if body is None:
            connection.request(method, f"/?{params}", headers=headers)
        else:
            headers["Transfer-Encoding"] = "chunked"
            connection.request(method, f"/?{params}", body=_chunked(body), headers=headers)
    return SentRequest(connection, node)


@contextmanager
def _mapped_errors(connection: http.client.HTTPConnection, node: Node) -> Iterator[None]:
    """A failed exchange closes the connection and says what failed, in the log store's terms."""
    try:
        yield
    except (TimeoutError, ConnectionError, socket.gaierror) as e:
        connection.close()
        raise LogStoreUnavailable(
            f"{where(node)} is unreachable ({e.__class__.__name__}); check that it is running and the http_port in "
            "STRIX_CLICKHOUSE_URL."
        ) from e
    except (OSError, http.client.HTTPException) as e:
        connection.close()
        raise LogStoreError(f"{where(node)} failed: {e.__class__.__name__}: {e}") from e
    except BaseException:
        # The body's own error (a damaged archive): closing the socket makes ClickHouse abandon the
        # half-sent INSERT, so that the staging table can be dropped at once.
        connection.close()
        raise


def _chunked(body: Iterable[Sequence[bytes | memoryview]]) -> Iterator[bytes | memoryview]:
    """HTTP/1.1 chunked framing of a body given as HTTP chunks, each a sequence of buffers sent as they
    are: a chunk's buffers are never joined (that copy cost as much CPU as counting the rows)."""
    for buffers in body:
        size = sum(len(buffer) for buffer in buffers)
        if not size:
            continue
        yield b"%X\r\n" % size
        yield from buffers
        yield b"\r\n"
    yield b"0\r\n\r\n"


# ClickHouse (through Poco) sends a long body as 4 KiB chunks; runs of them are unframed by slicing.
_USUAL_SIZE = 4096
_USUAL_HEADER = b"%X\r\n" % _USUAL_SIZE
_STRIDE = len(_USUAL_HEADER) + _USUAL_SIZE + 2
_FRAMING = [(offset, _USUAL_HEADER[offset : offset + 1]) for offset in range(len(_USUAL_HEADER))] + [
    (_STRIDE - 2, b"\r"),
    (_STRIDE - 1, b"\n"),
]


def dechunk(response: http.client.HTTPResponse) -> Iterator[bytes]:
    """The body of a chunked response, in blocks of BLOCK_SIZE to twice that.

    The socket is read into one reused buffer as data arrives (so that ClickHouse's 4 KiB sends are
    acknowledged at once), and unframed only once a block's worth is there or the last chunk came:
    a socket read brings 17 KiB on average here, and unframing after each cost more CPU than the
    read. A run of usual-size chunks is checked and cut with a few slices of the buffer (each
    framing byte of the run is compared at once, in C); any other chunk is parsed alone."""
    if not response.chunked:
        while data := response.read(READ_SIZE):
            yield data
        return
    source = response.fp  # the buffered socket, positioned at the first chunk header
    buffer = bytearray(2 * BLOCK_SIZE)  # grows only for a chunk larger than it
    filled = 0
    while True:
        with memoryview(buffer) as free:
            got = source.readinto1(free[filled:])
        if not got:
            raise LogStoreError(f"{where()} closed the connection in the middle of the row stream.")
        filled += got
        if filled < BLOCK_SIZE and not buffer.endswith(_LAST_CHUNK, 0, filled):
            continue
        position, pieces, ended = _unframe(buffer, filled)
        if pieces:
            yield b"".join(pieces)  # a copy: the buffer is reused
        del pieces  # views of the buffer: released before it is moved or grown (a bytearray refuses that)
        if ended:
            return  # trailers, if any, are left unread: the connection is closed after
        filled -= position
        buffer[:filled] = buffer[position : position + filled]
        if len(buffer) - filled < BLOCK_SIZE:  # a chunk larger than the buffer is on its way
            buffer.extend(bytes(len(buffer)))


# How a chunked body ends (without trailers): a read that ends so has the buffer unframed at once.
# (Data that happens to end so only has it unframed early.)
_LAST_CHUNK = b"0\r\n\r\n"


def _unframe(buffer: bytearray, filled: int) -> tuple[int, list[memoryview], bool]:
    """The data of the whole chunks in ``buffer[:filled]``: (where the first incomplete chunk starts,
    the data as views of the buffer, whether the last chunk was reached)."""
    view = memoryview(buffer)[:filled]
    pieces: list[memoryview] = []
    position = 0
    while True:
        run = _usual_run(buffer, position, filled)
        if run:
            first = position + len(_USUAL_HEADER)
            pieces += [view[start : start + _USUAL_SIZE] for start in range(first, first + run * _STRIDE, _STRIDE)]
            position += run * _STRIDE
            continue
        line_end = buffer.find(b"\r\n", position, filled)
        if line_end < 0:
            return position, pieces, False
        chunk_size = int(bytes(view[position:line_end]).split(b";", 1)[0], 16)
        if chunk_size == 0:
            return position, pieces, True
        start, end = line_end + 2, line_end + 2 + chunk_size
        if end + 2 > filled:
            return position, pieces, False
        if view[end : end + 2] != b"\r\n":
            raise LogStoreError(f"{where()} sent a malformed chunk (no CRLF after {chunk_size} bytes).")
        pieces.append(view[start:end])
        position = end + 2


def _usual_run(buffer: bytearray, position: int, filled: int) -> int:
    """How many whole usual-size chunks of ``buffer[:filled]`` follow one another from ``position``
    (0: the next is not one).

    Each framing byte is taken from every chunk of the run with one stepped slice; the run ends at the
    first chunk where one of them differs."""
    whole = (filled - position) // _STRIDE
    if not whole or not buffer.startswith(_USUAL_HEADER, position, filled):
        return 0
    end = position + whole * _STRIDE
    for offset, byte in _FRAMING:
        column = buffer[position + offset : end : _STRIDE]
        whole = min(whole, len(column) - len(column.lstrip(byte)))
        if not whole:
            return 0
    return whole
