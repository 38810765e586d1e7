"""Restores an investigator can aim: a time range, a filter, an estimate beforehand (real services)."""

import json
import subprocess
from datetime import UTC, datetime, timedelta

import pytest

from archives import services
from archives.models import RestoreJob
from archives.services.options import BadRestoreOptions, RestoreOptions
from archives.services.plan import plan_restore
from strix import logstore
from tests.jobs import archive_in_process

pytestmark = pytest.mark.django_db(transaction=True)

NOW = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def restore(admin, archive, target, options):
    job = services.request_restore(admin, archive, target=target, clear_existing=False, enqueue=False, options=options)
    services.run_restore(job.id)
    job.refresh_from_db()
    assert job.status == RestoreJob.Status.COMPLETED, job.error
    return job


def clickhouse_count(where: str) -> int:
    query = f"SELECT count() FROM {logstore.database()}.logs WHERE {where}"
    return int(subprocess.run(["clickhouse-client", "-q", query], capture_output=True, text=True, check=True).stdout)


def test_a_one_day_restore_of_a_30_day_archive_inserts_exactly_that_day_as_estimated(admin, make_fractal, seed_rows):
    source, investigation = make_fractal(), make_fractal()
    seed_rows(source, 1_000_000, days=30, seed=61, now=NOW)
    archive = archive_in_process(admin, source)
    assert sum(rows for rows, _size in archive.day_rows.values()) == 1_000_000
    day_start = NOW - timedelta(days=12)
    options = RestoreOptions(day_start, day_start + timedelta(days=1))

    plan = plan_restore(archive, investigation, False, options)
    expected = logstore.window_checksum(str(source.id), day_start, day_start + timedelta(days=1))
    assert plan.exact and plan.insert_rows == expected[0] > 0
    assert [d.day for d in plan.per_day] == [day_start.date().isoformat()]

    job = restore(admin, archive, investigation, options)
    assert job.rows_restored == plan.insert_rows
    assert logstore.fractal_checksum(str(investigation.id)) == expected
    # --to is exclusive: the hold ends at the last instant before it, so the next day is not held.
    assert (job.hold_start, job.hold_end) == (day_start, day_start + timedelta(days=1, microseconds=-1))
    # Seekable archive: only that day's chunks (plus header, locator and index) were read.
    assert archive.format_version == 3 and len(archive.day_offsets) >= 30
    assert 0 < job.bytes_read <= archive.size_bytes / 10, (job.bytes_read, archive.size_bytes)

    whole = restore(admin, archive, make_fractal(), RestoreOptions())
    assert whole.rows_restored == 1_000_000 and whole.bytes_read == archive.size_bytes


def test_filtered_restores_insert_exactly_the_rows_the_same_predicate_counts_on_the_source(
    admin, make_fractal, seed_rows
):
    source = make_fractal()
    rows = seed_rows(source, 30_000, days=5, seed=62)
    archive = archive_in_process(admin, source)

    by_text = make_fractal()
    plan = plan_restore(archive, by_text, False, RestoreOptions.parse(contains="sshd"))
    job = restore(admin, archive, by_text, RestoreOptions.parse(contains="sshd"))
    expected = clickhouse_count(f"fractal_id = '{source.id}' AND position(raw_log, 'sshd') > 0")
    assert 0 < job.rows_restored == expected == logstore.count_rows(str(by_text.id))
    # The estimate of a filter comes from a sample of the archive, and says so.
    assert plan.filter_sample.sampled == 20_000 and not plan.exact
    assert abs(plan.insert_rows - expected) <= 0.05 * 30_000, (plan.insert_rows, expected)
    assert "estimated from a sample" in plan.summary()

    for field_text, key, value in (("Channel=Security", "Channel", "Security"), ("user=zoë", "user", "zoë")):
        job = restore(admin, archive, make_fractal(), RestoreOptions.parse(field_text=field_text))
        wanted = sum(1 for row in rows if json.loads(row[3]).get(key) == value)  # counted independently
        assert 0 < job.rows_restored == wanted, field_text


def test_bad_restore_options_are_refused_before_anything_runs():
    with pytest.raises(BadRestoreOptions, match="is not before"):
        RestoreOptions(NOW, NOW - timedelta(days=1))
    with pytest.raises(BadRestoreOptions, match="name=value"):
        RestoreOptions.parse(field_text="no-equals-sign")


def test_searching_an_archive_returns_exactly_what_the_same_query_returns_on_the_source(admin, make_fractal, seed_rows):
    import io

    from django.core.management import call_command

    source = make_fractal()
    seed_rows(source, 20_000, days=4, seed=63, now=NOW)
    archive = archive_in_process(admin, source)
    day = NOW - timedelta(days=2)
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "archives", "search", str(archive.id), "--from", f"{day:%Y-%m-%d}", "--to", f"{NOW:%Y-%m-%d}",
        "--contains", "sshd", stdout=out, stderr=err,
    )  # fmt: skip
    found = sorted(json.loads(line)["log_id"] for line in out.getvalue().splitlines())
    table, fid = f"{logstore.database()}.logs", source.id
    window = (
        f"timestamp >= toDateTime('{day:%Y-%m-%d %H:%M:%S}', 'UTC') AND timestamp < toDateTime('{NOW:%F %T}', 'UTC')"
    )
    query = f"SELECT log_id FROM {table} WHERE fractal_id = '{fid}' AND position(raw_log, 'sshd') > 0 AND {window}"
    answer = subprocess.run(["clickhouse-client", "-q", query], capture_output=True, text=True, check=True)
    expected = sorted(answer.stdout.split())
    assert found == expected and len(found) > 100
    assert f"{len(found):,} matching records" in err.getvalue()
    limited = io.StringIO()
    call_command("archives", "search", str(archive.id), "--limit", "5", stdout=limited, stderr=io.StringIO())
    assert len(limited.getvalue().splitlines()) == 5


def test_a_one_day_replace_restore_replaces_that_day_and_leaves_the_other_29_untouched(admin, make_fractal, seed_rows):
    fractal = make_fractal()
    seed_rows(fractal, 30_000, days=30, seed=64, now=NOW)
    archive = archive_in_process(admin, fractal)
    fid, day = str(fractal.id), NOW - timedelta(days=12)
    days = [(NOW - timedelta(days=d), NOW - timedelta(days=d - 1)) for d in range(31, 0, -1)]
    archived_day = logstore.window_checksum(fid, day, day + timedelta(days=1))
    # After the archive the day changed: a row arrived late; the replace brings back the archived day.
    logstore.insert_rows(fid, [(day + timedelta(hours=3), "late-row", "late", "{}", NOW)])
    before = {start: logstore.window_checksum(fid, start, end) for start, end in days}

    options = RestoreOptions(day, day + timedelta(days=1))
    plan = plan_restore(archive, fractal, True, options)
    assert plan.delete_rows == logstore.count_rows(fid, day, day + timedelta(days=1)) == archived_day[0] + 1
    assert f"in [{day:%Y-%m-%d %H:%M:%S}, {day + timedelta(days=1):%Y-%m-%d %H:%M:%S}) UTC" in plan.summary()
    assert f"delete {plan.delete_rows:,} rows" in plan.summary()
    job = services.request_restore(admin, archive, fractal, clear_existing=True, enqueue=False, options=options)
    services.run_restore(job.id)
    job.refresh_from_db()
    assert job.status == RestoreJob.Status.COMPLETED, job.error

    after = {start: logstore.window_checksum(fid, start, end) for start, end in days}
    assert after[day] == archived_day != before[day]
    assert {s: c for s, c in after.items() if s != day} == {s: c for s, c in before.items() if s != day}
    assert sum(count for count, _ in after.values()) == 30_000


def test_ranges_outside_the_archive_and_huge_holds_are_refused_before_a_job_exists(admin, make_fractal, seed_rows):
    fractal = make_fractal()
    seed_rows(fractal, 500, days=3, seed=65, now=NOW)
    archive = archive_in_process(admin, fractal)
    outside = RestoreOptions(NOW + timedelta(days=5), NOW + timedelta(days=6))
    with pytest.raises(BadRestoreOptions, match="holds none of archive"):
        services.request_restore(admin, archive, make_fractal(), enqueue=False, options=outside)
    with pytest.raises(BadRestoreOptions, match="holds none of archive"):
        plan_restore(archive, fractal, False, outside)
    for hold_days in (5_000_000, 0, -1):
        with pytest.raises(BadRestoreOptions, match="hold lasts 1 to"):
            services.request_restore(admin, archive, make_fractal(), enqueue=False, hold_days=hold_days)
    assert not RestoreJob.objects.exists()
