"""An archive reads its days from ClickHouse one query per day, the next day's query sent ahead near
the end of the day being read: the rows are exactly the fractal's, a query sent ahead never outlives
a failed archive, and it is sent only when little of the day is left (ClickHouse gives up on a
client that reads nothing for long)."""

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


def test_an_archive_read_with_queries_sent_ahead_holds_exactly_the_fractals_rows(
    admin, make_fractal, seed_rows, sent_ahead
):
    fractal = make_fractal()
    seed_rows(fractal, 30_000, days=5, seed=91)
    archive = archive_in_process(admin, fractal)
    days = sorted(archive.day_rows)
    assert len(days) >= 5 and [start.date().isoformat() for start, _ in sent_ahead] == days[1:]
    with open_archive(archive) as stored:
        archived = b"".join(stored.blocks()).splitlines()
    in_clickhouse = b"".join(logstore.stream_records(str(fractal.id), None, None)).splitlines()
    assert len(archived) == 30_000 and sorted(archived) == sorted(in_clickhouse)
    # Every day holds only its own rows, in time order.
    for line, following in zip(archived, archived[1:], strict=False):
        assert json.loads(line)["timestamp"] <= json.loads(following)["timestamp"]
    assert running_queries(str(fractal.id)) == 0


def test_a_query_sent_ahead_is_cancelled_with_the_archive_that_failed(
    admin, make_fractal, seed_rows, sent_ahead, monkeypatch
):
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


def test_the_next_days_query_goes_ahead_only_when_the_day_has_about_a_second_left(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(create, "time", SimpleNamespace(monotonic=lambda: now[0]))
    streams = _Streams()
    ahead = create._SendAhead(streams, ("next", "window"), (1_000_000, 0, 0))
    now[0] += 10
    ahead.after(100_000)  # 10 s for a tenth: 90 s left
    assert streams.sent == []
    now[0] += 79
    ahead.after(990_000)  # 89 s for 99 %: under a second left
    assert streams.sent == [("next", "window")]
    ahead.after(1_000_000)
    assert len(streams.sent) == 1  # once

    last_day = create._SendAhead(streams, None, (1_000, 0, 0))
    last_day.after(999)
    assert len(streams.sent) == 1  # nothing after the last day read
