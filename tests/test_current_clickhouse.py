"""The log store's statements for ClickHouse >= 20.1 (DateTime64), run on ClickHouse 26 (chdb, in this
process: see tests/chdb_server.py), and archives crossing between 18.16 and a current release.

The session's real server is 18.16; each test here compares what 26 does with what 18.16 did."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from archives import services
from archives.models import RestoreJob
from archives.services.options import RestoreOptions
from strix import logstore
from tests.chdb_server import ChdbServer
from tests.jobs import archive_in_process

pytestmark = pytest.mark.django_db(transaction=True)

DAY = datetime(2026, 11, 10, tzinfo=UTC)
HOSTILE = ['quote " backslash \\ slash /', "zoë ünïcödé 日本", "tab\tnew\nline", "nul-free \u0001 control", "%(x)s %"]


@pytest.fixture
def chdb(tmp_path):
    server = ChdbServer(tmp_path / "chdb")
    yield server
    server.close()


def on_current(server: ChdbServer, monkeypatch) -> None:
    server.install(monkeypatch, "strix_current")
    logstore.ensure_schema()


def whole_second_rows(count: int, start: datetime = DAY, step=timedelta(minutes=7)) -> list[tuple]:
    return [
        (
            start + i * step,
            f"id-{i}",
            f"{HOSTILE[i % len(HOSTILE)]} row {i}",
            json.dumps({"n": i, "user": "zoë" if i % 2 else "bob", "ok": i % 3 == 0}),
            start + i * step + timedelta(seconds=3),
        )
        for i in range(count)
    ]


def millisecond_rows() -> list[tuple]:
    """Rows on both sides of a day boundary and a last timestamp shared by two rows, to the millisecond."""
    moments = [
        DAY + timedelta(hours=9, milliseconds=1),
        DAY + timedelta(days=1) - timedelta(milliseconds=1),  # 23:59:59.999, the day's last instant
        DAY + timedelta(days=1),  # 00:00:00.000, the next day's first
        DAY + timedelta(days=1, hours=8, milliseconds=456),
        DAY + timedelta(days=1, hours=8, milliseconds=457),
        DAY + timedelta(days=1, hours=8, milliseconds=457),  # the last timestamp, twice
    ]
    return [(at, f"ms-{i}", f"event {i}", "{}", at + timedelta(milliseconds=250)) for i, at in enumerate(moments)]


def ms_text(at: datetime) -> str:
    return f"{at:%Y-%m-%d %H:%M:%S}.{at.microsecond // 1000:03d}"


def archive_lines(fractal_id: str) -> list[bytes]:
    """The records of a whole archive, day by day, as the archive job streams them."""
    count, first, last = logstore.fractal_span(fractal_id)
    windows = logstore.windows_between(first, last, None, logstore.just_after(last))
    return [line for start, end in windows
            for line in b"".join(logstore.stream_records(fractal_id, start, end)).splitlines()]  # fmt: skip


def test_the_schema_on_a_current_server_keeps_milliseconds(chdb, monkeypatch):
    on_current(chdb, monkeypatch)
    columns = dict(
        logstore.execute(
            "SELECT name, type FROM system.columns WHERE database = %(db)s AND table = 'logs'",
            {"db": logstore.database()},
        )
    )
    assert columns["timestamp"] == columns["ingest_timestamp"] == "DateTime64(3, 'UTC')"
    assert logstore.tables_with_prefix("claim_") == ["claim_fences"]
    assert logstore.server_version()[0] >= 24


def test_an_archive_on_a_current_server_has_every_row_to_the_millisecond_and_each_day_its_own(chdb, monkeypatch):
    on_current(chdb, monkeypatch)
    rows = millisecond_rows()
    logstore.insert_rows("f-ms", rows)
    count, first, last = logstore.fractal_span("f-ms")
    assert (count, last) == (6, rows[-1][0])  # not cut to whole seconds on the way back
    lines = archive_lines("f-ms")
    assert len(lines) == 6  # the two rows at the last instant included (the bound is just after it)
    records = [json.loads(line) for line in lines]
    assert [r["timestamp"] for r in records] == [ms_text(r[0]) for r in rows]
    assert records[0]["ingest_timestamp"] == ms_text(rows[0][4])
    day_one = b"".join(logstore.stream_records("f-ms", DAY, DAY + timedelta(days=1)))
    day_one = [json.loads(line) for line in day_one.splitlines()]
    assert [r["log_id"] for r in day_one] == ["ms-0", "ms-1"]  # 23:59:59.999 in, 00:00:00.000 out
    figures = logstore.day_figures("f-ms", DAY + timedelta(days=3), checksums=True)
    assert {day: n for day, (n, _) in figures.items()} == {"2026-11-10": 2, "2026-11-11": 4}


def test_records_made_on_18_16_and_on_26_attach_on_26_with_18_16s_checksums(chdb, monkeypatch):
    rows = whole_second_rows(500)
    logstore.insert_rows("f-old", rows)  # the session's 18.16 server
    made_on_18 = archive_lines("f-old")
    figures_18 = logstore.fractal_checksum("f-old"), logstore.day_figures("f-old", DAY + timedelta(days=9), None, True)

    on_current(chdb, monkeypatch)
    for table, fractal_id, records in (("staging_a", "f-from-18", made_on_18), ("staging_b", "f-from-26", None)):
        if records is None:  # the records 26 itself formats for the fractal restored from 18.16's
            records = archive_lines("f-from-18")
            assert [json.loads(line) for line in records] == [
                {**json.loads(line), "timestamp": json.loads(line)["timestamp"] + ".000",
                 "ingest_timestamp": json.loads(line)["ingest_timestamp"] + ".000"}
                for line in made_on_18
            ]  # fmt: skip
            for options in (
                RestoreOptions(field=("user", "zoë")),
                RestoreOptions(field=("n", "7")),
                RestoreOptions(field=("ok", "true")),
                RestoreOptions(DAY + timedelta(hours=5), DAY + timedelta(hours=20), contains="row 1"),
            ):  # the same records kept from either release's bytes
                kept_26 = [json.loads(line)["log_id"] for line in records if options.matches(json.loads(line))]
                kept_18 = [json.loads(line)["log_id"] for line in made_on_18 if options.matches(json.loads(line))]
                assert kept_26 == kept_18 and kept_26
        logstore.create_staging_table(table, fractal_id)
        sent = logstore.insert_records(table, [b"\n".join(records) + b"\n"])
        assert sent == logstore.count_table(table) == 500
        for partition in logstore.staged_partitions(table):
            logstore.attach_partition(table, partition)
        figures = (
            logstore.fractal_checksum(fractal_id),
            logstore.day_figures(fractal_id, DAY + timedelta(days=9), None, True),
        )
        assert figures == figures_18


def test_fenced_deletions_on_a_current_server_respect_fences_and_millisecond_bounds(chdb, monkeypatch):
    on_current(chdb, monkeypatch)
    logstore.insert_rows("f-del", millisecond_rows())
    logstore.record_fence("f-del", 5)
    logstore.record_fence("f-del", 6)  # a takeover: 5 is stale from now on
    logstore.delete_rows("f-del", 5)
    assert logstore.count_rows("f-del") == 6
    at = DAY + timedelta(days=1, hours=8, milliseconds=457)
    logstore.delete_window("f-del", 6, DAY + timedelta(days=1), at)  # [00:00:00.000, 08:00:00.457)
    assert sorted(row[2] for row in logstore.stream_rows("f-del")) == ["ms-0", "ms-1", "ms-4", "ms-5"]
    assert any("allow_nondeterministic_mutations" in s for s in chdb.statements)  # accepted by 26
    logstore.delete_rows("f-del", 6)
    assert logstore.count_rows("f-del") == 0


def test_an_archive_made_on_18_16_restores_into_a_current_server(chdb, monkeypatch, admin, make_fractal):
    source = make_fractal()
    logstore.insert_rows(str(source.id), whole_second_rows(800))
    archive = archive_in_process(admin, source)
    expected = logstore.fractal_checksum(str(source.id))

    on_current(chdb, monkeypatch)
    target = make_fractal()
    logstore.insert_rows(str(target.id), millisecond_rows())  # replaced
    job = services.request_restore(admin, archive, target=target, enqueue=False)
    services.run_restore(job.id)
    job.refresh_from_db()
    assert job.status == RestoreJob.Status.COMPLETED, job.error
    assert logstore.fractal_checksum(str(target.id)) == expected


def test_an_archive_made_on_a_current_server_restores_into_18_16_or_is_refused_naming_the_milliseconds(
    chdb, monkeypatch, admin, make_fractal
):
    whole, precise = make_fractal(), make_fractal()
    with monkeypatch.context() as current:
        on_current(chdb, current)
        logstore.insert_rows(str(whole.id), whole_second_rows(300))
        logstore.insert_rows(str(precise.id), millisecond_rows())
        whole_archive, precise_archive = archive_in_process(admin, whole), archive_in_process(admin, precise)
        expected = logstore.fractal_checksum(str(whole.id))
    # Back on the session's 18.16 server.
    target = make_fractal()
    job = services.request_restore(admin, whole_archive, target=target, enqueue=False)
    services.run_restore(job.id)
    job.refresh_from_db()
    assert job.status == RestoreJob.Status.COMPLETED, job.error
    assert logstore.fractal_checksum(str(target.id)) == expected  # the same rows, the same checksum

    kept = make_fractal()
    logstore.insert_rows(str(kept.id), whole_second_rows(20))
    before = logstore.fractal_checksum(str(kept.id))
    job = services.request_restore(admin, precise_archive, target=kept, enqueue=False)
    services.run_restore(job.id)
    job.refresh_from_db()
    assert job.status == RestoreJob.Status.FAILED
    assert "millisecond timestamps" in job.error and "2026-11-10 09:00:00.001" in job.error, job.error
    assert "20.1 or later" in job.error
    assert logstore.fractal_checksum(str(kept.id)) == before


def test_day_fingerprints_are_the_same_on_18_16_and_on_26(chdb, monkeypatch):
    """A synthetic archive after an upgrade compares figures taken on 18.16 with figures taken on the
    new release: the same rows must give the same three figures (MetroHash64 does; farmHash64 does not)."""
    rows = whole_second_rows(700)
    logstore.insert_rows("f-same", rows)
    on_18 = logstore.day_fingerprints("f-same", None, "0123456789abcdef0123456789abcdef")
    on_current(chdb, monkeypatch)
    logstore.insert_rows("f-same", rows)
    on_26 = logstore.day_fingerprints("f-same", None, "0123456789abcdef0123456789abcdef")
    assert on_26 == on_18 and len(on_18.days) == 4 and on_18.rows == 700
    assert logstore.day_fingerprints("f-same", None, "another salt").days != on_18.days
