"""Scheduled archives and max_archives pruning."""

from datetime import UTC, datetime, timedelta

import pytest

from archives import services
from archives.models import Archive
from archives.services.schedule import is_due, period_start
from strix.storage import get_store
from tests.celery_worker import wait_for_job

pytestmark = pytest.mark.django_db(transaction=True)

WEDNESDAY_NOON = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def test_periods_are_calendar_day_iso_week_and_month_in_utc():
    assert period_start("daily", WEDNESDAY_NOON) == datetime(2026, 11, 25, tzinfo=UTC)
    assert period_start("weekly", WEDNESDAY_NOON) == datetime(2026, 11, 23, tzinfo=UTC)  # Monday
    assert period_start("monthly", WEDNESDAY_NOON) == datetime(2026, 11, 1, tzinfo=UTC)


def _scheduled(fractal, created, status=Archive.Status.COMPLETED):
    archive = Archive.objects.create(fractal=fractal, kind=Archive.Kind.SCHEDULED, status=status)
    Archive.objects.filter(pk=archive.pk).update(created_at=created)
    return archive


@pytest.mark.parametrize(
    "schedule, last, due",
    [
        ("daily", WEDNESDAY_NOON - timedelta(hours=13), True),  # yesterday
        ("daily", WEDNESDAY_NOON - timedelta(hours=11), False),  # today
        ("weekly", WEDNESDAY_NOON - timedelta(days=2), False),  # Monday this week
        ("weekly", WEDNESDAY_NOON - timedelta(days=3), True),  # last Sunday
        ("monthly", WEDNESDAY_NOON - timedelta(days=24), False),  # Nov 1
        ("monthly", WEDNESDAY_NOON - timedelta(days=25), True),  # Oct 31
        ("never", None, False),
    ],
)
def test_a_fractal_is_due_once_per_period(make_fractal, schedule, last, due):
    fractal = make_fractal(archive_schedule=schedule)
    if last:
        _scheduled(fractal, last)
    assert is_due(fractal, WEDNESDAY_NOON) is due


def test_a_failed_scheduled_archive_is_retried_after_an_hour_not_before(make_fractal):
    fractal = make_fractal(archive_schedule="daily")
    failed = _scheduled(fractal, WEDNESDAY_NOON - timedelta(minutes=20), Archive.Status.FAILED)
    assert not is_due(fractal, WEDNESDAY_NOON)
    Archive.objects.filter(pk=failed.pk).update(created_at=WEDNESDAY_NOON - timedelta(minutes=70))
    assert is_due(fractal, WEDNESDAY_NOON)


def test_scan_starts_due_archives_in_the_worker_and_skips_busy_and_unscheduled_fractals(
    celery_worker, make_fractal, seed_rows
):
    daily, busy, never = make_fractal(archive_schedule="daily"), make_fractal(archive_schedule="weekly"), make_fractal()
    seed_rows(daily, 1_000)
    services.request_archive(None, busy, enqueue=False)  # holds the fractal

    started = services.scan_schedules()
    assert [a.fractal_id for a in started] == [daily.id]
    archive = wait_for_job(started[0])
    assert archive.status == Archive.Status.COMPLETED and archive.kind == Archive.Kind.SCHEDULED
    assert archive.row_count == 1_000
    assert services.scan_schedules() == []  # done for today
    assert not Archive.objects.filter(fractal=never).exists()


def test_max_archives_keeps_the_newest_and_deletes_the_oldest_with_their_files(make_fractal, seed_rows):
    fractal = make_fractal(max_archives=2)
    seed_rows(fractal, 200)
    made = []
    for kind in (Archive.Kind.MANUAL, Archive.Kind.SCHEDULED, Archive.Kind.MANUAL):
        archive = services.request_archive(None, fractal, kind=kind, enqueue=False)
        services.run_archive(archive.id)
        made.append(archive)
    remaining = list(Archive.objects.filter(fractal=fractal).order_by("created_at"))
    assert [a.id for a in remaining] == [made[1].id, made[2].id]
    assert not get_store("archives").exists(made[0].file_name)
    assert all(get_store("archives").exists(a.file_name) for a in remaining)
