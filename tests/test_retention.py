"""Retention deletes old logs only when an archive holds them."""

from datetime import UTC, datetime, timedelta

import pytest

from archives import services
from archives.models import ArchiveEvent, FractalClaim
from archives.services.errors import FractalBusy
from archives.services.retention import enforce_all, enforce_retention
from strix import logstore
from tests.jobs import archive_in_process

pytestmark = pytest.mark.django_db(transaction=True)

NOW = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)


def rows_at(days_ago: list[float], tag: str, ingest=None):
    return [
        (
            NOW - timedelta(days=age),
            f"{tag}-{age}",
            f"{tag} event {age} days old",
            "{}",
            ingest or NOW - timedelta(days=age),
        )
        for age in days_ago
    ]


def day(days_ago: float) -> str:
    return (NOW - timedelta(days=days_ago)).date().isoformat()


def test_with_a_schedule_nothing_is_deleted_without_an_archive(make_fractal):
    fractal = make_fractal(retention_days=3, archive_schedule="daily")
    logstore.insert_rows(str(fractal.id), rows_at([1, 5, 6], "a"))
    result = enforce_retention(fractal, now=NOW)
    assert result.deleted_days == [] and set(result.kept_days) == {day(5), day(6)}
    assert logstore.count_rows(str(fractal.id)) == 3


def test_with_a_schedule_archived_days_older_than_the_window_and_its_buffer_day_are_deleted(make_fractal):
    fractal = make_fractal(retention_days=10, archive_schedule="daily")
    logstore.insert_rows(str(fractal.id), rows_at([1, 2, 4, 4.2, 6], "a"))
    first = archive_in_process(None, fractal)  # holds all of them (all inside 10 days)
    assert set(first.day_checksums) >= {day(2), day(4), day(6)}

    fractal.retention_days = 3
    fractal.save()
    result = enforce_retention(fractal, now=NOW)
    assert result.deleted_days == [day(6)]  # day 4 is older than 3 days, but inside the 1-day buffer
    remaining = sorted(row[2] for row in logstore.stream_rows(str(fractal.id)))
    assert remaining == ["a-1", "a-2", "a-4", "a-4.2"]


def test_a_day_that_received_rows_after_its_archive_is_kept(make_fractal):
    fractal = make_fractal(retention_days=10, archive_schedule="weekly")
    logstore.insert_rows(str(fractal.id), rows_at([5, 6], "a"))
    archive_in_process(None, fractal)
    logstore.insert_rows(str(fractal.id), rows_at([5.1], "late"))  # a late arrival: not in the archive
    fractal.retention_days = 3
    fractal.save()
    result = enforce_retention(fractal, now=NOW)
    assert result.deleted_days == [day(6)] and result.kept_days == [day(5)]
    assert sorted(row[2] for row in logstore.stream_rows(str(fractal.id))) == ["a-5", "late-5.1"]


def test_retention_waits_while_an_archive_or_restore_holds_the_fractal(make_fractal):
    fractal = make_fractal(retention_days=3)
    services.request_archive(None, fractal, enqueue=False)
    with pytest.raises(FractalBusy):
        enforce_retention(fractal, now=NOW)


def test_retention_frees_the_fractal_afterwards(make_fractal):
    fractal = make_fractal(retention_days=3)
    enforce_retention(fractal, now=NOW)
    assert not FractalClaim.objects.exists()
    services.request_archive(None, fractal, enqueue=False)  # not busy


def test_a_retention_claim_left_by_a_dead_worker_is_released_by_the_reaper(make_fractal):
    fractal = make_fractal(retention_days=3)
    FractalClaim.objects.create(fractal=fractal)  # its worker died; its Redis lock has lapsed
    with pytest.raises(FractalBusy):
        services.request_archive(None, fractal, enqueue=False)
    services.reap_stale_jobs()
    assert not FractalClaim.objects.exists()
    services.request_archive(None, fractal, enqueue=False)


def test_retention_never_deletes_rows_ingested_during_the_run(make_fractal):
    """The last guard: a row that arrives while retention runs survives even a matching day's delete."""
    fractal = make_fractal()
    old, fresh = NOW - timedelta(days=9), datetime.now(UTC)
    logstore.insert_rows(
        str(fractal.id), rows_at([9], "archived", ingest=old) + rows_at([9.1], "arriving", ingest=fresh)
    )
    start, end = (NOW - timedelta(days=10)), (NOW - timedelta(days=8))
    logstore.record_fence(str(fractal.id), 1)
    logstore.delete_window(str(fractal.id), 1, start, end, ingested_before=fresh - timedelta(minutes=10))
    assert [row[2] for row in logstore.stream_rows(str(fractal.id))] == ["arriving-9.1"]


def _submitted_deletions(monkeypatch) -> list[list[str]]:
    """The conditions of each deletion statement sent to ClickHouse (sent on, too)."""
    from strix.logstore import fences

    submitted = []
    submit = fences._submit_delete
    monkeypatch.setattr(
        fences,
        "_submit_delete",
        lambda table, conditions, params: submitted.append(conditions) or submit(table, conditions, params),
    )
    return submitted


def test_consecutive_deletable_days_go_in_one_window_of_one_mutation(make_fractal, monkeypatch):
    fractal = make_fractal(retention_days=20, archive_schedule="daily")
    logstore.insert_rows(str(fractal.id), rows_at([4, 5, 6, 8], "a"))
    archive_in_process(None, fractal)
    fractal.retention_days = 3
    fractal.save()
    submitted = _submitted_deletions(monkeypatch)
    result = enforce_retention(fractal, now=NOW)
    assert len(result.deleted_days) == 3 and len(submitted) == 1  # days 5-6 together, day 8 alone (4: buffer)
    assert submitted[0][0].count("timestamp >=") == 2
    assert logstore.count_rows(str(fractal.id)) == 1


def test_a_pass_deletes_many_fractals_days_in_one_mutation_and_postpones_a_busy_one(make_fractal, monkeypatch):
    fractals = [make_fractal(retention_days=3) for _ in range(4)]
    for fractal in fractals:
        logstore.insert_rows(str(fractal.id), rows_at([1, 5, 6, 9], str(fractal.id)))
    busy = fractals[-1]
    services.request_archive(None, busy, enqueue=False)  # holds the fractal: retention must wait
    submitted = _submitted_deletions(monkeypatch)

    results = enforce_all(now=NOW, batch=2)

    assert sorted(len(conditions) for conditions in submitted) == [1, 2]  # batches of 2: the busy one skipped
    assert sorted(r.fractal for r in results) == sorted(f.name for f in fractals[:3])
    assert all(r.deleted_days == sorted([day(9), day(6), day(5)]) for r in results)
    assert [logstore.count_rows(str(f.id)) for f in fractals] == [1, 1, 1, 4]
    assert all(
        ArchiveEvent.objects.filter(fractal=f, action="retention", outcome="done").exists() for f in fractals[:3]
    )
    assert not FractalClaim.objects.filter(fractal__in=fractals[:3]).exists()  # every claim released


def test_fractals_in_one_batch_each_lose_only_days_before_their_own_cutoff(make_fractal):
    short, long = make_fractal(retention_days=2), make_fractal(retention_days=6)
    for fractal in (short, long):
        logstore.insert_rows(str(fractal.id), rows_at([1, 3, 4, 5, 7, 8], str(fractal.id)))
    results = {r.fractal: r for r in enforce_all(now=NOW)}
    assert results[short.name].deleted_days == sorted(day(age) for age in (3, 4, 5, 7, 8))
    assert results[long.name].deleted_days == sorted(day(age) for age in (7, 8))
    assert logstore.count_rows(str(short.id)) == 1 and logstore.count_rows(str(long.id)) == 4


def test_rows_restored_into_a_fractal_with_retention_survive_the_next_run_and_go_after_the_hold(make_fractal):
    """Restored old rows match the archive's day checksums; only the restore's hold keeps them."""
    fractal = make_fractal(retention_days=30, archive_schedule="monthly")
    logstore.insert_rows(str(fractal.id), rows_at([float(age) + 0.5 for age in range(25)], "old"))
    made = archive_in_process(None, fractal)
    restored_count = logstore.count_rows(str(fractal.id))
    fractal.retention_days = 7
    fractal.save()

    job = services.request_restore(None, made, target=fractal, enqueue=False)
    services.run_restore(job.id)
    job.refresh_from_db()
    assert job.status == "completed" and job.rows_restored == restored_count
    assert job.hold_until > NOW + timedelta(days=13)

    result = enforce_retention(fractal)
    assert result.deleted_days == [] and len(result.held_days) >= 16  # the days older than 7 + 1 (buffer)
    assert logstore.count_rows(str(fractal.id)) == restored_count

    after_hold = job.hold_until + timedelta(hours=1)
    result = enforce_retention(fractal, now=after_hold)
    assert result.deleted_days and result.held_days == []
    assert logstore.count_rows(str(fractal.id)) < restored_count


def test_without_a_schedule_retention_deletes_whole_days_older_than_the_window_and_says_so(make_fractal):
    fractal = make_fractal(retention_days=7)  # archive schedule: Never (the default)
    logstore.insert_rows(str(fractal.id), rows_at([1, 6.9, 8.5, 9, 20], "a"))
    result = enforce_retention(fractal, now=NOW)
    assert sorted(result.deleted_days) == sorted({day(8.5), day(9), day(20)}) and result.kept_days == []
    assert sorted(row[2] for row in logstore.stream_rows(str(fractal.id))) == ["a-1", "a-6.9"]
    event = ArchiveEvent.objects.get(fractal=fractal, action="retention")
    assert event.outcome == "done" and event.detail == "deleted 3 day(s)"


def test_with_a_daily_schedule_day_8_of_a_7_day_window_is_kept_and_days_no_archive_holds_are_reported(make_fractal):
    fractal = make_fractal(retention_days=30, archive_schedule="daily")
    logstore.insert_rows(str(fractal.id), rows_at([1, 7.6, 8.8, 10.5], "a"))
    archive_in_process(None, fractal)
    logstore.insert_rows(str(fractal.id), rows_at([12], "never-archived"))
    fractal.retention_days = 7
    fractal.save()
    result = enforce_retention(fractal, now=NOW)
    assert sorted(result.deleted_days) == sorted({day(8.8), day(10.5)})
    assert result.kept_days == [day(12)]  # no completed archive holds it
    remaining = sorted(row[2] for row in logstore.stream_rows(str(fractal.id)))
    assert remaining == ["a-1", "a-7.6", "never-archived-12"]  # 7.6 days: the 1-day buffer
    event = ArchiveEvent.objects.filter(fractal=fractal, action="retention").first()
    assert event.outcome == "kept days" and day(12) in event.detail
