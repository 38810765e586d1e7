"""Pure helpers, tested without any service: day windows, retention's runs of days, schedule periods."""

import io
from datetime import UTC, datetime, timedelta
from unittest.mock import Mock

import pytest

from archives.services.retention import _is_held, _runs
from strix.logstore import windows_between
from strix.logstore.schema import timestamp_resolution, timestamp_type


def at(day, hour=0, minute=0):
    return datetime(2026, 3, day, hour, minute, tzinfo=UTC)


def test_day_windows_cover_every_day_from_first_to_last_cut_at_start_and_end():
    windows = windows_between(at(1, 13), at(3, 8), start=at(1, 12), end=at(3, 8, 1))
    assert windows == [(at(1, 12), at(2)), (at(2), at(3)), (at(3), at(3, 8, 1))]


def test_day_windows_of_a_single_instant_and_across_a_month_end():
    assert windows_between(at(5, 10), at(5, 10)) == [(at(5), at(6))]
    last_of_february = datetime(2026, 2, 28, 23, tzinfo=UTC)
    assert windows_between(last_of_february, at(1, 1)) == [(last_of_february.replace(hour=0), at(1)), (at(1), at(2))]


def test_retention_deletes_consecutive_days_in_one_run_each():
    days = [(at(d), at(d + 1)) for d in (1, 2, 3, 5, 7, 8)]
    assert _runs(days) == [(at(1), at(4)), (at(5), at(6)), (at(7), at(9))]
    assert _runs([]) == []


@pytest.mark.parametrize(
    "hold, held",
    [((at(2, 23), at(3, 1)), True), ((at(3), at(3)), False), ((at(4), at(5)), False), ((at(1), at(2)), True)],
)
def test_a_day_is_held_when_a_restored_range_touches_it(hold, held):
    assert _is_held([hold], at(2), at(3)) is held


def test_timestamp_types_and_resolution_follow_the_server_version():
    assert timestamp_type((18, 16, 1)) == "DateTime('UTC')" and timestamp_resolution((18, 16)) == timedelta(seconds=1)
    assert timestamp_type((24, 3)) == "DateTime64(3, 'UTC')" and timestamp_resolution((24, 3)) == timedelta(
        milliseconds=1
    )


class _SlowSocket(io.RawIOBase):
    """A socket that hands out at most ``step`` bytes a read, like a slow network. After the body a
    kept-alive connection would wait (ClickHouse keeps it open): reading on is a failure here; a
    closed one reads as the end of the stream."""

    def __init__(self, body: bytes, step: int, closed_after: bool = False):
        self._body, self._step, self._at, self._closed_after = body, step, 0, closed_after

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self._at == len(self._body) and not self._closed_after:
            raise AssertionError("read past the end of the response: a kept-alive connection waits here")
        data = self._body[self._at : self._at + min(len(buffer), self._step)]
        buffer[: len(data)] = data
        self._at += len(data)
        return len(data)


class _ChunkedResponse:
    """A chunked response read through a buffered slow socket, as http.client reads one."""

    chunked = True

    def __init__(self, body: bytes, step: int, closed_after: bool = False):
        self.fp = io.BufferedReader(_SlowSocket(body, step, closed_after))


class _Played:
    """A request sent (http_client.SentRequest) whose response is played back."""

    node = None

    def __init__(self, response: _ChunkedResponse):
        self._response = response

    def response(self) -> tuple:
        return Mock(), self._response

    def close(self) -> None:
        pass


def _chunked(*chunks: bytes, extension: bytes = b"") -> bytes:
    return b"".join(b"%X%s\r\n%s\r\n" % (len(c), extension, c) for c in chunks) + b"0\r\n\r\n"


@pytest.mark.parametrize("step", [1 << 20, 5000, 4104, 777])
@pytest.mark.parametrize(
    "chunks",
    [
        [bytes([65 + n % 26]) * 4096 for n in range(300)],  # ClickHouse's usual 4 KiB chunks
        [b"a" * 4096, b"b" * 4096, b"tail\n", b"c" * 4096, b"x" * 65536, b"d" * 4096, b"e" * 10],
        [b"\r\n1000\r\n" * 512, b"f" * 4096, b"\r\n" * 2048],  # framing look-alikes inside the data
    ],
    ids=["usual", "mixed", "look-alikes"],
)
def test_dechunk_returns_exactly_the_body_however_it_is_chunked_and_read(chunks, step):
    from strix.logstore.http_client import dechunk

    assert b"".join(dechunk(_ChunkedResponse(_chunked(*chunks), step))) == b"".join(chunks)
    with_extension = _ChunkedResponse(_chunked(*chunks, extension=b";name=value"), step)
    assert b"".join(dechunk(with_extension)) == b"".join(chunks)


@pytest.mark.parametrize("step", [1 << 20, 4104, 333])
def test_a_row_stream_passes_records_and_stops_at_a_server_error_appended_to_it(monkeypatch, step):
    """ClickHouse appends an error that happens mid-stream to the body as text: the stream raises it
    before handing on the block that holds it, however the socket cut the body. (The server's
    response is played back here: a real server cannot be made to fail at a chosen byte.)"""
    from strix.logstore import LogStoreQueryError, records

    rows = b"".join(b'{"timestamp":"2026-01-02 03:04:%02d","raw_log":"%s"}\n' % (n % 60, b"x" * n) for n in range(400))
    error = b"Code: 241, e.displayText() = DB::Exception: Memory limit exceeded\n"
    handed_on: list[bytes] = []

    def stream(body: bytes) -> bytes:
        cut = [body[i : i + 4096] for i in range(0, len(body), 4096)]  # ClickHouse's 4 KiB chunks
        monkeypatch.setattr(records, "send", lambda *a, **k: _Played(_ChunkedResponse(_chunked(*cut), step)))
        handed_on.clear()
        for block in records.stream_records("f", None, None):
            handed_on.append(block)
        return b"".join(handed_on)

    assert stream(rows) == rows
    with pytest.raises(LogStoreQueryError, match="failed while streaming rows: Code: 241.*Memory limit exceeded"):
        stream(rows + error)
    assert error not in b"".join(handed_on)
    with pytest.raises(LogStoreQueryError, match="mid-line"):
        stream(rows[:-7])


def test_dechunk_ends_on_a_last_chunk_that_arrives_alone():
    """The last chunk read on its own, after the rest was unframed, ends the body: nothing more is
    read from a connection ClickHouse keeps open."""
    from strix.logstore.http_client import dechunk

    chunks = [bytes([97 + n % 26]) * 4096 for n in range(40)]  # more than a block: unframed first
    body = _chunked(*chunks)
    assert b"".join(dechunk(_ChunkedResponse(body, len(body) - len(b"0\r\n\r\n")))) == b"".join(chunks)


@pytest.mark.parametrize("seed", range(20))
def test_a_row_stream_is_cut_into_days_exactly_however_its_blocks_are_cut(seed):
    """records_by_day hands on the stream's bytes unchanged and in order, each buffer whole lines of
    one day, for random days (empty, one row, many), row lengths and block cuts, a day's prefix inside
    the text of another day's row included."""
    import random

    from strix.logstore.records import records_by_day

    rng = random.Random(seed)
    lines = []
    for day in range(1, rng.randrange(2, 9)):
        for n in range(rng.choice([0, 1, 2, 5, 40, 300])):
            text = rng.choice([b"x" * rng.randrange(0, 900), b'\\n{\\"timestamp\\":\\"2026-01-0' + b"%d" % (day + 1)])
            lines.append(b'{"timestamp":"2026-01-%02d %02d:00:00","raw_log":"%s"}\n' % (day, n % 24, text))
    stream = b"".join(lines)
    cuts = sorted(rng.sample(range(1, len(stream)), min(len(stream) - 1, rng.randrange(1, 60)))) if stream else []
    blocks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    pieces = list(records_by_day(blocks))
    assert b"".join(bytes(piece) for _, piece in pieces) == stream
    assert [day for day, _ in pieces] == sorted(day for day, _ in pieces)
    for day, piece in pieces:
        assert bytes(piece).endswith(b"\n")
        assert all(line.startswith(b'{"timestamp":"' + day.encode()) for line in bytes(piece).splitlines())


def test_a_row_stream_out_of_time_order_or_not_of_records_is_refused():
    from strix.logstore import LogStoreQueryError
    from strix.logstore.records import records_by_day

    day_2, day_1 = b'{"timestamp":"2026-01-02 00:00:00"}\n', b'{"timestamp":"2026-01-01 00:00:00"}\n'
    with pytest.raises(LogStoreQueryError, match="out of time order"):
        list(records_by_day([day_2 + day_1]))
    with pytest.raises(LogStoreQueryError, match="out of time order"):
        list(records_by_day([day_2, day_1 * 3]))
    with pytest.raises(LogStoreQueryError, match="does not begin with its timestamp"):
        list(records_by_day([day_1 + b'{"raw_log":"x"}\n']))
    with pytest.raises(LogStoreQueryError, match="mid-line"):
        list(records_by_day([day_1 + day_2[:20]]))


def test_dechunk_refuses_a_body_cut_short_or_misframed():
    from strix.logstore import LogStoreError
    from strix.logstore.http_client import dechunk

    body = _chunked(b"a" * 4096, b"b" * 4096, b"c" * 100)
    with pytest.raises(LogStoreError, match="middle of the row stream"):
        b"".join(dechunk(_ChunkedResponse(body[:-10], 1000, closed_after=True)))
    misframed = body.replace(b"c" * 100 + b"\r\n", b"c" * 100 + b"XX")
    with pytest.raises(LogStoreError, match="malformed chunk"):
        b"".join(dechunk(_ChunkedResponse(misframed, 1 << 20)))


@pytest.mark.parametrize("block_size", [7, 64, 1000, 1 << 20])
def test_lines_containing_finds_exactly_the_lines_that_hold_the_text_however_blocks_are_cut(block_size):
    from archives.services.search import _lines, _spans_containing

    lines = [f'{{"raw_log":"{n} {"sshd" * (n % 3)} x{n % 7}"}}'.encode() for n in range(500)]
    lines[0] = b"sshd at the start"
    lines[-1] = b"at the end sshd"
    data = b"\n".join(lines) + b"\n"
    blocks = [data[i : i + block_size] for i in range(0, len(data), block_size)]
    for needle in (b"sshd", b"x3", b"sshdsshd", b"absent"):
        expected = [line + b"\n" for line in _lines(iter(blocks)) if needle in line]
        found = [block[start:end] for block, start, end in _spans_containing(iter(blocks), needle)]
        assert found == expected


@pytest.mark.parametrize("with_memmem", [True, False])
def test_a_haystack_finds_what_bytes_find_finds_from_any_position(monkeypatch, with_memmem):
    """The C library's memmem (or, without it, bytes.find) answers as bytes.find does, bounds included."""
    import random

    from strix import bytesearch

    if not with_memmem:
        monkeypatch.setattr(bytesearch, "_MEMMEM", None)
    else:
        assert bytesearch._MEMMEM is not None  # this machine's C library has it: the fast path is tested
    rng = random.Random(11)
    data = bytes(rng.choice(b"ab\n") for _ in range(2000))
    haystack = bytesearch.Haystack(data)
    for _ in range(3000):
        needle = bytes(rng.choice(b"ab\n") for _ in range(rng.randrange(1, 6)))
        start, stop = sorted(rng.randrange(0, len(data) + 3) for _ in range(2))
        assert haystack.find(needle, start, stop) == data.find(needle, start, stop), (needle, start, stop)
    assert bytesearch.Haystack(b"").find(b"a", 0, 0) == -1
    assert bytesearch.Haystack(bytearray(b"a\nsshd")).find(b"sshd", 0, 6) == 2  # other buffers are copied first
    assert bytesearch.Haystack(memoryview(b"a\nsshd")[1:]).find(b"sshd", 0, 5) == 1


def test_lines_are_counted_as_bytes_count_counts_them_in_any_buffer():
    """count_lines (numpy) agrees with bytes.count on random blocks, empty ones, and the buffers that
    archives hand it: bytes, a bytearray, a memoryview slice."""
    import random

    from strix.bytesearch import count_lines

    rng = random.Random(5)
    for size in (0, 1, 7, 31, 32, 33, 4096, 131_072 + 5):
        data = bytes(rng.choice(b"\n\n{x\x0a\xff\x00") for _ in range(size))
        expected = data.count(b"\n")
        assert count_lines(data) == count_lines(bytearray(data)) == expected, size
        assert count_lines(memoryview(data)[3:]) == data[3:].count(b"\n")
    assert isinstance(count_lines(b"a\nb\n"), int) and count_lines(b"a\nb\n") == 2


def test_the_raw_log_check_from_bytes_agrees_with_parsing_or_declines():
    """Search decides most lines without parsing them: wherever it answers, the answer is the parsed one."""
    import itertools
    import json
    import random

    from archives.services.search import _raw_log_holds

    rng = random.Random(7)
    pieces = ["sshd", "nfoo", "foo", "\n", "\t", "é", '"', "\\", "/", "log_id", '","log_id":"', "\x01", "00e9", " "]
    needles = [b"sshd", b"nfoo", b"foo", b"tfoo", b"00e9", b"log_id", b"u0001", b"d f"]
    answered = 0
    for _ in range(3000):
        raw = "".join(rng.choice(pieces) for _ in range(rng.randrange(0, 8)))
        fields = json.dumps({"k": "".join(rng.choice(pieces) for _ in range(3))})
        record = {"timestamp": "2026-01-02 03:04:05", "raw_log": raw, "log_id": rng.choice(["sshd", "x"]),
                  "fields": fields, "ingest_timestamp": "2026-01-02 03:04:06"}  # fmt: skip
        for ascii_only, needle in itertools.product((True, False), needles):
            line = json.dumps(record, ensure_ascii=ascii_only, separators=(",", ":")).encode()
            found = _raw_log_holds(line, needle)
            before = b'{"timestamp":"x","raw_log":"sshd foo","log_id":"y"}\n'
            block = before + line + b"\n" + line
            assert _raw_log_holds(block, needle, len(before), len(before) + len(line) + 1) == found  # inside a block
            if found is not None:
                answered += 1
                assert found == (needle.decode() in raw), (line, needle)
    assert answered > 10_000  # most lines are decided from their bytes


def test_an_archive_plans_its_reads_as_runs_of_days_between_the_days_it_copies(monkeypatch):
    """The first read is a day alone; later reads take consecutive days up to READ_ROWS rows (a day
    without rows costs nothing); a copied day ends a run; a day larger than the budget is read alone."""
    from archives.services import create

    monkeypatch.setattr(create, "READ_ROWS", 100)
    windows = [(datetime(2026, 1, day, tzinfo=UTC), datetime(2026, 1, day + 1, tzinfo=UTC)) for day in range(1, 12)]
    rows = {1: 10, 2: 10, 3: 50, 4: 40, 6: 20, 7: 500, 8: 5, 9: 5, 10: 5, 11: 5}  # day 5: no rows
    days = {f"2026-01-{day:02d}": (count, 0, 0) for day, count in rows.items()}

    class Copier:
        def can_copy(self, day, figures):
            return day == "2026-01-09"

    plan = create._plan(windows, days, Copier())
    shape = [("copy" if step.copy else "read", [w[0].day for w in step.windows], step.rows) for step in plan]
    assert shape == [
        ("read", [1], 10),
        ("read", [2, 3, 4, 5], 100),
        ("read", [6], 20),
        ("read", [7], 500),
        ("read", [8], 5),
        ("copy", [9], 5),
        ("read", [10, 11], 10),
    ]
