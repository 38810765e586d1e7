"""An archive reads its days from ClickHouse a query per run of days (up to create.READ_ROWS rows), the
next run's query sent ahead near the end of the one being read: the rows are exactly the fractal's,
each day in its own frame, a query sent ahead never outlives a failed archive, and it is sent only
when little of the run is left (ClickHouse gives up on a client that reads nothing for long)."""

import json
import subprocess
from types import SimpleNamespace

import pytest

from archives import services
from archives.models import Archive
from archives.services import create
from archives.services.stored_file import open_archive
from strix import logstore
from tests.celery_worker import wait_until
from tests.jobs import archive_in_process

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def sent_ahead(monkeypatch) -> list[tuple]:
    """The windows whose query an archive sent ahead (the real queries are sent all the same)."""
    sent = []
    original = logstore.RecordStreams.send_ahead

    def record(self, start, end):
        sent.append((start, end))
        original(self, start, end)

    monkeypatch.setattr(logstore.RecordStreams, "send_ahead", record)
    return sent


def running_queries(fractal_id: str) -> int:
    query = (
        "SELECT count() FROM system.processes WHERE query LIKE '%JSONEachRow%' "
        f"AND query LIKE '%{fractal_id}%' AND query NOT LIKE '%system.processes%'"
    )
    return int(subprocess.run(["clickhouse-client", "-q", query], capture_output=True, text=True, check=True).stdout)


@pytest.mark.parametrize(
    "read_rows, reads",
    [(1, "a query a day"), (13_000, "two days a query"), (create.READ_ROWS, "all days in one query")],
)
def test_an_archive_read_in_runs_of_days_holds_exactly_the_fractals_rows(
    admin, make_fractal, seed_rows, sent_ahead, monkeypatch, read_rows, reads
):
    monkeypatch.setattr(create, "READ_ROWS", read_rows)
    fractal = make_fractal()
    seed_rows(fractal, 30_000, days=5, seed=91)
    archive = archive_in_process(admin, fractal)
    days = sorted(archive.day_rows)
    assert len(days) >= 5 and archive.days_read == len(days) and archive.rows_read == 30_000
    # Each run's first day, but the first run's, had its query sent ahead.
    runs = create._plan(logstore.windows_between(archive.time_start, archive.time_end), archive.day_checksums, None)
    # The first day is read alone (its query is the only one not sent ahead).
    expected_runs = {"a query a day": len(days), "all days in one query": 2}.get(reads)
    assert (len(runs) == expected_runs) if expected_runs else (2 < len(runs) < len(days))
    assert len(runs[0].windows) == 1
    first_days = [run.windows[0][0].date().isoformat() for run in runs]
    assert [start.date().isoformat() for start, _ in sent_ahead] == first_days[1:]
    with open_archive(archive) as stored:  # the reader's audit: each day's frame holds that day's rows only
        archived = b"".join(stored.blocks()).splitlines()
    in_clickhouse = b"".join(logstore.stream_records(str(fractal.id), None, None)).splitlines()
    assert len(archived) == 30_000 and sorted(archived) == sorted(in_clickhouse)
    for line, following in zip(archived, archived[1:], strict=False):
        assert json.loads(line)["timestamp"] <= json.loads(following)["timestamp"]
    for day, rows in archive.day_rows.items():
        assert rows[0] == sum(1 for line in archived if json.loads(line)["timestamp"].startswith(day))
    assert running_queries(str(fractal.id)) == 0


def test_a_query_sent_ahead_is_cancelled_with_the_archive_that_failed(
    admin, make_fractal, seed_rows, sent_ahead, monkeypatch
):
    monkeypatch.setattr(create, "READ_ROWS", 1)  # a query a day
    fractal = make_fractal()
    seed_rows(fractal, 30_000, days=5, seed=92)

    def fail_once_sent_ahead(name):
        if name == "archive.streaming" and sent_ahead:
            raise OSError("the disk is full")  # the job's own failure, after a query went ahead

    monkeypatch.setattr(create.failpoints, "reached", fail_once_sent_ahead)
    archive = services.run_archive(services.request_archive(admin, fractal, enqueue=False).id)
    assert archive.status == Archive.Status.FAILED and "disk is full" in archive.error and len(sent_ahead) == 1
    wait_until(lambda: running_queries(str(fractal.id)) == 0, 10, 0.2, "ClickHouse to drop the query sent ahead")


class _Streams:
    def __init__(self):
        self.sent = []

    def send_ahead(self, *window):
        self.sent.append(window)


def test_the_next_reads_query_goes_ahead_only_when_the_read_has_about_a_second_left(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(create, "time", SimpleNamespace(monotonic=lambda: now[0]))
    streams = _Streams()
    ahead = create._SendAhead(streams, ("next", "window"), 1_000_000)
    now[0] += 10
    ahead.after(100_000)  # 10 s for a tenth: 90 s left
    assert streams.sent == []
    now[0] += 79
    ahead.after(990_000)  # 89 s for 99 %: under a second left
    assert streams.sent == [("next", "window")]
    ahead.after(1_000_000)
    assert len(streams.sent) == 1  # once

    last_day = create._SendAhead(streams, None, 1_000)
    last_day.after(999)
    assert len(streams.sent) == 1  # nothing after the last read
