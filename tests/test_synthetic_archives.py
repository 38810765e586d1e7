"""Synthetic full archives: days unchanged since the previous archive are copied from its file, the rest
read from ClickHouse, and the result is an archive of its own, row for row a full archive's."""

import base64
import signal
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings

from archives import services
from archives.models import AlertIncident, Archive, ArchiveEvent
from archives.services import alerts
from archives.services.retention import enforce_retention
from archives.services.stored_file import open_archive
from archives.tasks import archive_fractal
from strix import logstore
from strix.fractals.demo import generate_rows
from strix.storage import get_store
from tests.celery_worker import wait_for_job, wait_until
from tests.jobs import archive_in_process, reap_when_lock_lapses
from tests.stored import flip_byte
from tests.test_format_spec import independent_reader

pytestmark = pytest.mark.django_db(transaction=True)

MIDNIGHT = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def day_end(days_ago: int) -> datetime:
    """The last millisecond of the UTC day ``days_ago`` days before today."""
    return MIDNIGHT - timedelta(days=days_ago - 1, milliseconds=1)


def day(days_ago: int) -> str:
    return (MIDNIGHT - timedelta(days=days_ago)).date().isoformat()


def add_rows(fractal, count: int, last_day: int, days: int = 1, seed: int = 1) -> None:
    """``count`` rows spread over ``days`` whole UTC days, the newest of them ``last_day`` days ago."""
    logstore.insert_rows(str(fractal.id), generate_rows(count, days=days, seed=seed, now=day_end(last_day)))


def rows_by_day(archive: Archive) -> dict[str, list[bytes]]:
    """The archive's decrypted NDJSON lines per day (from each row's own timestamp), sorted."""
    days = defaultdict(list)
    with open_archive(archive) as stored:
        for line in b"".join(stored.blocks()).splitlines():
            days[line[14:24].decode()].append(line)
    return {label: sorted(lines) for label, lines in days.items()}


def delete_one_row(fractal, log_id: str) -> None:
    """Remove one row as an operator's mutation would (not through Strix), and wait for it."""
    table = f"{logstore.client.database()}.{logstore.LOGS_TABLE}"
    logstore.execute(f"ALTER TABLE {table} DELETE WHERE fractal_id = %(fid)s AND log_id = %(id)s",
                     {"fid": str(fractal.id), "id": log_id})  # fmt: skip
    logstore.wait_for_mutations(logstore.LOGS_TABLE, timeout=60)


def test_a_synthetic_archive_holds_exactly_a_full_archives_rows_and_stands_alone(admin, make_fractal):
    fractal = make_fractal()
    add_rows(fractal, 6000, last_day=2, days=6, seed=11)  # days 7 … 2 ago
    first = archive_in_process(admin, fractal)
    assert (first.days_copied, first.days_read, first.rows_read) == (0, 6, 6000)
    assert all(len(figures) == 3 for figures in first.day_checksums.values())

    add_rows(fractal, 1000, last_day=1, seed=12)  # a new day
    add_rows(fractal, 7, last_day=5, seed=13)  # late rows in an old day
    synthetic = archive_in_process(admin, fractal)
    full = archive_in_process(admin, fractal, full_read=True)  # at the same moment: nothing changed between

    day_5_rows = first.day_rows[day(5)][0] + 7
    assert (synthetic.days_copied, synthetic.days_read, synthetic.rows_read) == (5, 2, 1000 + day_5_rows)
    assert synthetic.copied_from == first.id
    assert (full.days_copied, full.days_read, full.full_read) == (0, 7, True)
    assert synthetic.row_count == full.row_count == 7007
    assert rows_by_day(synthetic) == rows_by_day(full)
    assert synthetic.day_checksums == full.day_checksums
    assert synthetic.day_rows == full.day_rows
    events = ArchiveEvent.objects.filter(fractal=fractal, outcome="completed").values_list("detail", flat=True)
    assert any("5 days copied, 2 days read" in detail for detail in events)

    # A reader written from docs/FORMAT.md reads it as any other archive: the format is the same.
    blob = (get_store("archives").base / synthetic.file_name).read_bytes()
    master = base64.b64decode(settings.STRIX_BACKUP_ENCRYPTION_KEY)
    header, plaintext, trailer = independent_reader(blob, master)
    assert header["metadata"]["archive_id"] == str(synthetic.id) and trailer["rows"] == 7007
    assert [s["label"] for s in trailer["segments"]] == [day(n) for n in range(7, 0, -1)]
    with open_archive(synthetic) as stored:
        assert b"".join(stored.blocks()) == plaintext

    # It stands alone: with the archive it copied from deleted, file and all, it restores in full.
    services.delete_archive(admin, first)
    services.delete_archive(admin, full)
    target = make_fractal()
    job = services.request_restore(admin, synthetic, target=target, enqueue=False)
    services.run_restore(job.id)
    job.refresh_from_db()
    assert job.status == "completed", job.error
    assert logstore.fractal_checksum(str(target.id)) == logstore.fractal_checksum(str(fractal.id))


def test_a_late_row_a_deleted_row_and_a_day_retention_removed_are_each_read_fresh(admin, make_fractal):
    fractal = make_fractal()
    add_rows(fractal, 3000, last_day=2, days=6, seed=21)  # days 7 … 2 ago
    first = archive_in_process(admin, fractal)
    assert first.days_read == 6

    add_rows(fractal, 1, last_day=3, seed=22)  # one late row in day 3
    in_day_5 = [r for r in logstore.stream_rows(str(fractal.id), MIDNIGHT - timedelta(days=5), MIDNIGHT)]
    delete_one_row(fractal, in_day_5[0][2])  # one row of day 5 gone
    fractal.retention_days = 6  # without a schedule retention deletes day 7 (older than the window)
    fractal.save()
    result = enforce_retention(fractal)
    assert day(7) in result.deleted_days

    synthetic = archive_in_process(admin, fractal)
    full = archive_in_process(admin, fractal, full_read=True)
    assert day(7) not in synthetic.day_rows  # gone, and not copied back from the previous file
    # Read: the late row's day, the deleted row's day, and day 6, which the window now cuts (its rows
    # before the cutoff are outside it). Copied: days 4 and 2.
    read = {day(3), day(5)} | ({day(6)} & set(synthetic.day_rows))
    assert (synthetic.days_read, synthetic.days_copied) == (len(read), 2)
    assert set(synthetic.day_rows) - read == {day(4), day(2)}
    assert rows_by_day(synthetic) == rows_by_day(full)
    assert synthetic.day_checksums == full.day_checksums


def test_a_flipped_byte_in_the_previous_file_reads_that_day_fresh_and_marks_the_previous_damaged(
    admin, make_fractal, webhook
):
    fractal = make_fractal()
    add_rows(fractal, 6000, last_day=1, days=4, seed=31)  # days 4 … 1 ago
    first = archive_in_process(admin, fractal)
    flip_byte(first, day(3))

    synthetic = archive_in_process(admin, fractal)
    assert (synthetic.days_copied, synthetic.days_read) == (3, 1)
    assert synthetic.rows_read == first.day_rows[day(3)][0]
    first.refresh_from_db()
    assert first.verification == Archive.Verification.DAMAGED
    assert f"day {day(3)} failed while archive {synthetic.short_id} copied from it" in first.damage
    assert rows_by_day(synthetic) == rows_by_day(archive_in_process(admin, fractal, full_read=True))

    alerts.check_alerts()
    incident = AlertIncident.objects.get(key=f"archive-damaged:{first.pk}")
    assert first.short_id in incident.message and fractal.name in incident.message
    assert any("archive damaged" in call["text"] for call in webhook)
    # A damaged archive is never copied from again: the next one copies from the synthetic one.
    again = archive_in_process(admin, fractal)
    assert again.copied_from != first.id and again.days_copied == 4


def test_a_previous_file_that_is_gone_means_a_full_read_and_no_damage(admin, make_fractal):
    fractal = make_fractal()
    add_rows(fractal, 500, last_day=1, days=3, seed=41)
    first = archive_in_process(admin, fractal)
    get_store("archives").delete(first.file_name)
    second = archive_in_process(admin, fractal)
    assert (second.days_copied, second.days_read) == (0, 3)
    first.refresh_from_db()
    assert first.verification == ""


def test_retention_deletes_days_that_only_a_synthetic_archive_holds(admin, make_fractal):
    fractal = make_fractal(archive_schedule="daily")
    add_rows(fractal, 900, last_day=2, days=6, seed=51)  # days 7 … 2 ago
    first = archive_in_process(None, fractal)
    second = archive_in_process(None, fractal)
    assert second.days_copied == 6
    services.delete_archive(admin, first)
    fractal.retention_days = 3  # + the 1-day buffer of a schedule: days 5, 6 and 7 ago may go
    fractal.save()
    result = enforce_retention(fractal)
    assert set(result.deleted_days) >= {day(5), day(6), day(7)} and not result.kept_days


def test_an_archive_being_copied_from_cannot_be_deleted(admin, make_fractal):
    fractal = make_fractal()
    add_rows(fractal, 100, last_day=1, seed=61)
    first = archive_in_process(admin, fractal)
    Archive.objects.create(fractal=fractal, status=Archive.Status.ARCHIVING, copied_from=first.id)
    with pytest.raises(services.ArchiveInUse, match="copying unchanged days from archive"):
        services.delete_archive(admin, first)
    assert get_store("archives").exists(first.file_name)


@pytest.mark.parametrize("buffer_mb", ["0", "32"])
def test_the_previous_file_changing_between_the_check_and_the_copy(admin, make_fractal, failpoint_worker, buffer_mb):
    """A real worker stops itself (SIGSTOP) after a day's check and before its copy; the test damages
    that day of the previous file, then lets the worker go on. A day held in memory (32 MiB buffer) is
    copied from what was authenticated; a day too large to hold (buffer 0) is read again, fails, and the
    archive fails without publishing anything."""
    fractal = make_fractal()
    add_rows(fractal, 3000, last_day=1, days=3, seed=71)
    first = archive_in_process(admin, fractal)
    worker = failpoint_worker("archive.copy-checked#2", env={"STRIX_ARCHIVE_COPY_BUFFER_MB": buffer_mb})
    archive = services.request_archive(admin, fractal, enqueue=False)
    archive_fractal.apply_async([str(archive.id)], queue=worker.queue, task_id=str(archive.id))
    wait_until(worker.is_stopped, 120, 0.05, "the worker to stop after checking day 2")
    flip_byte(first, day(2), past_start=20)
    worker.signal(signal.SIGCONT)
    archive = wait_for_job(archive)
    first.refresh_from_db()
    if buffer_mb == "32":
        assert archive.status == Archive.Status.COMPLETED and archive.days_copied == 3
        assert rows_by_day(archive) == rows_by_day(archive_in_process(admin, fractal, full_read=True))
        return
    assert archive.status == Archive.Status.FAILED
    assert f"failed while day {day(2)} was copied out of it" in archive.error
    assert not get_store("archives").exists(archive.file_name)
    assert first.verification == Archive.Verification.DAMAGED
    again = archive_in_process(admin, fractal)  # copies nothing from the damaged file, reads every day
    assert (again.days_copied, again.days_read) == (0, 3)


def test_a_worker_killed_while_copying_leaves_the_previous_archive_whole_and_deletable(
    admin, make_fractal, failpoint_worker
):
    fractal = make_fractal()
    add_rows(fractal, 2000, last_day=1, days=3, seed=81)
    first = archive_in_process(admin, fractal)
    worker = failpoint_worker("archive.copy-checked#1")
    archive = services.request_archive(admin, fractal, enqueue=False)
    archive_fractal.apply_async([str(archive.id)], queue=worker.queue, task_id=str(archive.id))
    wait_until(worker.is_stopped, 120, 0.05, "the worker to stop while copying")
    worker.kill()
    archive = reap_when_lock_lapses(archive)
    assert archive.status == Archive.Status.FAILED
    first.refresh_from_db()
    assert first.verification == ""
    with open_archive(first) as stored:
        assert sum(block.count(b"\n") for block in stored.blocks()) == 2000
    services.delete_archive(admin, first)  # the failed archive no longer holds it


def test_create_archive_offers_a_full_read_and_the_manage_tab_says_what_was_copied(
    admin, make_fractal, client, celery_worker
):
    fractal = make_fractal()
    add_rows(fractal, 300, last_day=1, days=2, seed=91)
    archive_in_process(admin, fractal)
    client.force_login(admin)
    url = f"/admin/fractals/fractal/{fractal.pk}/manage/"
    page = client.get(url).content.decode()
    assert 'name="full_read"' in page and "Full read" in page
    client.post(url, {"action": "archive", "full_read": "yes"})
    queued = Archive.objects.filter(fractal=fractal).order_by("-created_at").first()
    assert queued.full_read
    wait_for_job(queued)  # the session's worker may take it; either way it ends
    synthetic = archive_in_process(admin, fractal)
    page = client.get(url).content.decode()
    assert "2 days copied, 0 days read" in page
    assert "2 days read (full read)" in page
    assert synthetic.days_copied == 2


def test_another_fractals_file_in_place_of_the_previous_one_is_never_copied(admin, make_fractal):
    """Storage tampering: fractal B's archive file put where fractal A's previous archive file was.
    Its header names B, so A's next archive copies nothing from it and holds only A's rows; A's previous
    archive is marked Damaged (its file is not its own)."""
    mine, theirs = make_fractal(), make_fractal()
    add_rows(mine, 400, last_day=1, days=2, seed=101)
    add_rows(theirs, 400, last_day=1, days=2, seed=102)
    previous = archive_in_process(admin, mine)
    foreign = archive_in_process(admin, theirs)
    base = get_store("archives").base
    (base / previous.file_name).write_bytes((base / foreign.file_name).read_bytes())

    archive = archive_in_process(admin, mine)
    assert (archive.days_copied, archive.days_read) == (0, 2)
    own = {line for lines in rows_by_day(archive).values() for line in lines}
    assert len(own) == 400
    assert not own & {line for lines in rows_by_day(foreign).values() for line in lines}
    previous.refresh_from_db()
    assert previous.verification == Archive.Verification.DAMAGED and "not this archive's" in previous.damage


def test_on_s3_the_previous_archive_is_read_by_ranges_and_the_result_is_the_full_archives(
    admin, make_fractal, storage_backend
):
    fractal = make_fractal()
    add_rows(fractal, 2500, last_day=2, days=5, seed=111)
    archive_in_process(admin, fractal)
    add_rows(fractal, 300, last_day=1, seed=112)
    synthetic = archive_in_process(admin, fractal)
    assert (synthetic.days_copied, synthetic.days_read) == (5, 1)
    assert rows_by_day(synthetic) == rows_by_day(archive_in_process(admin, fractal, full_read=True))


def test_hostile_full_read_values_and_fractal_names_never_reach_clickhouse_or_500(
    admin, make_fractal, make_user, client
):
    from django.core.management import CommandError, call_command

    mine, theirs = make_fractal(), make_fractal()
    add_rows(mine, 50, last_day=1, seed=121)
    client.force_login(make_user(administers=[mine]))
    url = f"/admin/fractals/fractal/{mine.pk}/manage/"
    for value in ["%(start).1s", "yes'; DROP TABLE logs; --", "y\x00es", "x" * 10_000, "YES"]:
        response = client.post(url, {"action": "archive", "full_read": value})
        assert response.status_code in (302, 400), (value[:20], response.status_code)
        assert response.status_code == 400 or "\x00" not in value
    assert not Archive.objects.filter(full_read=True).exists()  # only "yes" asks for a full read
    # Another fractal's Manage tab cannot be used to archive it.
    assert client.post(f"/admin/fractals/fractal/{theirs.pk}/manage/", {"action": "archive"}).status_code == 404
    assert not Archive.objects.filter(fractal=theirs).exists()
    for name in ["%(start).1s", "it's", "a\x00b"]:
        with pytest.raises(CommandError):
            call_command("archives", "create", name, "--full")


def while_the_first_day_streams(monkeypatch, action) -> None:
    """Run ``action`` once, at the archive's first block (its figures taken, day 3's query not yet sent)."""
    from archives.services import create

    monkeypatch.setattr(create, "READ_ROWS", 1)  # a query a day, each sent near the end of the day before
    done = []

    def reached(name):
        if name == "archive.streaming" and not done:
            done.append(action())

    monkeypatch.setattr(create.failpoints, "reached", reached)


def test_rows_arriving_while_an_archive_streams_are_held_and_the_next_archive_reads_their_day(
    admin, make_fractal, monkeypatch
):
    fractal = make_fractal()
    add_rows(fractal, 3000, last_day=2, days=6, seed=31)  # days 7 … 2 ago
    counted = logstore.day_figures(str(fractal.id), MIDNIGHT)
    while_the_first_day_streams(monkeypatch, lambda: add_rows(fractal, 3, last_day=3, seed=32))
    during = archive_in_process(admin, fractal)
    # Counted before they arrived, archived all the same: the file may hold more than its figures.
    assert during.day_checksums[day(3)][0] == counted[day(3)][0]
    assert during.day_rows[day(3)][0] == counted[day(3)][0] + 3 and during.row_count == 3003

    monkeypatch.undo()
    synthetic = archive_in_process(admin, fractal)
    full = archive_in_process(admin, fractal, full_read=True)
    assert (synthetic.days_copied, synthetic.days_read) == (5, 1)  # day 3's figures changed: read again
    assert rows_by_day(synthetic) == rows_by_day(full) and synthetic.day_checksums == full.day_checksums


def test_rows_deleted_while_an_archive_streams_fail_it_and_nothing_is_published(admin, make_fractal, monkeypatch):
    fractal = make_fractal()
    add_rows(fractal, 3000, last_day=2, days=6, seed=33)
    in_day_3 = list(logstore.stream_rows(str(fractal.id), MIDNIGHT - timedelta(days=3), MIDNIGHT - timedelta(days=2)))
    while_the_first_day_streams(monkeypatch, lambda: delete_one_row(fractal, in_day_3[0][2]))
    archive = services.run_archive(services.request_archive(admin, fractal, enqueue=False).id)
    assert archive.status == Archive.Status.FAILED
    assert f"day {day(3)} had {len(in_day_3):,} rows when the archive counted them" in archive.error
    assert f"only {len(in_day_3) - 1:,} were read" in archive.error and "Nothing was published" in archive.error
    assert not get_store("archives").exists(archive.file_name)
    assert archive.row_count in (None, 0) and not archive.day_checksums
