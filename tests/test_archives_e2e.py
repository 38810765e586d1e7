"""Fractal archives end to end, through a real Celery worker, ClickHouse, Redis and PostgreSQL."""

import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from archives import services
from archives.models import Archive, FractalClaim, RestoreJob
from archives.services import promote
from archives.services.claims import Claim
from archives.services.errors import FractalBusy, NotAllowed
from archives.services.jobs import start_job
from archives.services.promote import STAGING_PREFIX
from archives.services.restore import stage
from archives.tasks import archive_fractal, restore_archive
from strix import logstore
from strix.storage import get_store
from tests.celery_worker import WorkerProcess, wait_for_job, wait_until
from tests.jobs import reap_when_lock_lapses

pytestmark = pytest.mark.django_db(transaction=True)


def dump(fractal):
    return sorted(logstore.stream_rows(str(fractal.id)), key=lambda row: (row[0], row[2]))


def checksum(fractal):
    return logstore.fractal_checksum(str(fractal.id))


def staging_tables():
    return logstore.tables_with_prefix(STAGING_PREFIX)


def archive_of(admin, fractal):
    archive = wait_for_job(services.request_archive(admin, fractal))
    assert archive.status == Archive.Status.COMPLETED, archive.error
    return archive


def test_archive_100k_rows_and_restore_into_an_empty_fractal_gives_identical_rows(
    celery_worker, admin, make_fractal, seed_rows
):
    source, empty = make_fractal(), make_fractal()
    seed_rows(source, 100_000, days=10)

    archive = archive_of(admin, source)
    assert archive.row_count == 100_000
    assert archive.size_bytes == get_store("archives").size(archive.file_name)
    assert archive.format_version == 3 and archive.key_id and len(archive.day_offsets) >= 10
    assert archive.time_start <= archive.time_end
    assert archive.progress_rows == archive.expected_rows == 100_000

    job = wait_for_job(services.request_restore(admin, archive, target=empty))
    assert job.status == RestoreJob.Status.COMPLETED, job.error
    assert job.rows_restored == 100_000
    assert dump(empty) == dump(source)
    assert staging_tables() == []
    assert not FractalClaim.objects.exists()


def test_archive_of_a_fractal_with_retention_holds_only_the_retention_window(celery_worker, admin, make_fractal):
    fractal = make_fractal(retention_days=7)
    now = datetime.now(UTC)
    rows = [
        (now - timedelta(days=age, hours=12), f"row-{age}", f"event {age} days old", "{}", now) for age in range(30)
    ]
    logstore.insert_rows(str(fractal.id), rows)

    archive = archive_of(admin, fractal)
    assert archive.row_count == 7  # ages 0.5 … 6.5 days
    restored = make_fractal()
    wait_for_job(services.request_restore(admin, archive, target=restored))
    assert sorted(row[2] for row in dump(restored)) == sorted(f"row-{age}" for age in range(7))


def test_restore_replaces_by_default_and_appends_when_asked_leaving_other_fractals_alone(
    celery_worker, admin, make_fractal, seed_rows
):
    source, target, bystander = make_fractal(), make_fractal(), make_fractal()
    seed_rows(source, 3_000, seed=1)
    seed_rows(target, 2_000, seed=2)
    seed_rows(bystander, 1_000, seed=3)
    bystander_before = checksum(bystander)
    archive = archive_of(admin, source)

    replaced = wait_for_job(services.request_restore(admin, archive, target=target))
    assert replaced.status == RestoreJob.Status.COMPLETED, replaced.error
    assert checksum(target) == checksum(source)

    appended = wait_for_job(services.request_restore(admin, archive, target=target, clear_existing=False))
    assert appended.status == RestoreJob.Status.COMPLETED, appended.error
    # Append never duplicates: every row of the archive is already in the target.
    assert checksum(target) == checksum(source)
    assert (appended.rows_restored, appended.rows_skipped) == (0, 3_000)
    other = make_fractal()
    seed_rows(other, 1_500, seed=11)
    wait_for_job(services.request_restore(admin, archive_of(admin, other), target=target, clear_existing=False))
    source_count, source_total = checksum(source)
    other_count, other_total = checksum(other)
    assert checksum(target) == (source_count + other_count, (source_total + other_total) % 2**64)
    assert checksum(bystander) == bystander_before
    assert checksum(source) == (source_count, source_total)


def test_twenty_concurrent_requests_on_one_fractal_start_exactly_one_archive(
    celery_worker, admin, make_fractal, seed_rows
):
    fractal = make_fractal()
    seed_rows(fractal, 20_000)
    outcomes, barrier = [], threading.Barrier(20)

    def request():
        barrier.wait()
        try:
            outcomes.append(services.request_archive(admin, fractal))
        except FractalBusy as e:
            outcomes.append(e)
        finally:
            connection.close()

    threads = [threading.Thread(target=request) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    archives = [o for o in outcomes if isinstance(o, Archive)]
    refusals = [o for o in outcomes if isinstance(o, FractalBusy)]
    assert len(archives) == 1 and len(refusals) == 19
    assert all(str(e) == f"an archive or restore is already running for fractal {fractal.name}" for e in refusals)
    assert wait_for_job(archives[0]).status == Archive.Status.COMPLETED
    assert Archive.objects.filter(fractal=fractal).count() == 1


def test_archive_on_one_fractal_and_restore_on_another_run_at_the_same_time(
    celery_worker, admin, make_fractal, seed_rows
):
    first, second, target = make_fractal(), make_fractal(), make_fractal()
    seed_rows(first, 150_000, seed=4)
    seed_rows(second, 150_000, seed=5)
    archive = archive_of(admin, second)

    running_archive = services.request_archive(admin, first)
    running_restore = services.request_restore(admin, archive, target=target)
    with pytest.raises(FractalBusy):
        services.request_restore(admin, archive, target=first)  # busy with its archive
    done_archive, done_restore = wait_for_job(running_archive), wait_for_job(running_restore)
    assert done_archive.status == Archive.Status.COMPLETED and done_restore.status == RestoreJob.Status.COMPLETED
    assert done_archive.started_at < done_restore.finished_at
    assert done_restore.started_at < done_archive.finished_at


def _damage_archive_file(archive, how):
    store = get_store("archives")
    path = store.base / archive.file_name
    blob = bytearray(path.read_bytes())
    if how == "tampered":
        blob[len(blob) // 2] ^= 0x01
    else:
        del blob[len(blob) * 2 // 3 :]
    path.chmod(0o600)
    path.write_bytes(bytes(blob))


@pytest.mark.parametrize("how, message", [("tampered", "failed authentication"), ("truncated", "truncated")])
def test_restore_of_a_damaged_archive_fails_and_leaves_the_target_untouched(
    celery_worker, admin, make_fractal, seed_rows, how, message
):
    source, target = make_fractal(), make_fractal()
    seed_rows(source, 60_000, seed=6)
    seed_rows(target, 5_000, seed=7)
    archive = archive_of(admin, source)
    _damage_archive_file(archive, how)
    before = checksum(target)

    job = wait_for_job(services.request_restore(admin, archive, target=target))
    assert job.status == RestoreJob.Status.FAILED
    assert message in job.error
    assert checksum(target) == before
    assert staging_tables() == []


def test_users_without_admin_rights_on_source_or_target_are_refused(make_user, make_fractal, seed_rows):
    source, target = make_fractal(), make_fractal()
    seed_rows(source, 10)
    only_source, only_target = make_user(administers=[source]), make_user(administers=[target])
    with pytest.raises(NotAllowed):
        services.request_archive(only_target, source)
    archive = services.request_archive(only_source, source, enqueue=False)
    services.run_archive(archive.id)
    archive.refresh_from_db()
    for user in (only_source, only_target):
        with pytest.raises(NotAllowed):
            services.request_restore(user, archive, target=target)
    with pytest.raises(NotAllowed):
        services.delete_archive(only_target, archive)
    assert not RestoreJob.objects.exists()


def test_delete_removes_file_and_record_but_not_while_a_restore_reads_it(admin, make_fractal, seed_rows):
    source = make_fractal()
    seed_rows(source, 100)
    archive = services.request_archive(admin, source, enqueue=False)
    services.run_archive(archive.id)
    archive.refresh_from_db()
    job = services.request_restore(admin, archive, target=make_fractal(), enqueue=False)
    with pytest.raises(services.ArchiveInUse, match="a restore is reading archive"):
        services.delete_archive(admin, archive)
    services.run_restore(job.id)
    services.delete_archive(admin, archive)
    assert not Archive.objects.filter(pk=archive.pk).exists()
    assert not get_store("archives").exists(archive.file_name)


@pytest.fixture
def solo_worker(django_db_blocker, tmp_path):
    """A worker of its own, on a queue of its own, so that the job surely runs in the process killed.

    It freezes itself (SIGSTOP) a few blocks into the job, so that the test kills it mid-job whatever
    the machine's speed.
    """
    failpoints = "archive.streaming#5:stop,restore.staging#5:stop"
    worker = WorkerProcess(
        tmp_path, pool="solo", concurrency=1, queue=f"kill-{uuid.uuid4().hex[:8]}", env={"STRIX_FAILPOINTS": failpoints}
    )
    yield worker
    worker.stop()


def test_worker_killed_mid_archive_is_reaped_and_the_next_archive_succeeds(solo_worker, admin, make_fractal, seed_rows):
    fractal = make_fractal()
    seed_rows(fractal, 400_000, days=60, seed=8)
    archive = services.request_archive(admin, fractal, enqueue=False)
    archive_fractal.apply_async([str(archive.id)], queue=solo_worker.queue)
    wait_until(solo_worker.is_stopped, 120, 0.05, "the worker to be mid-archive")
    solo_worker.kill()

    archive = reap_when_lock_lapses(archive)
    assert archive.status == Archive.Status.FAILED and "worker stopped" in archive.error
    store = get_store("archives")
    assert list(store.base.rglob(f"*{archive.id}*")) == []  # neither a partial file nor a final one
    assert not FractalClaim.objects.exists()

    next_archive = services.request_archive(admin, fractal, enqueue=False)
    services.run_archive(next_archive.id)
    next_archive.refresh_from_db()
    assert next_archive.status == Archive.Status.COMPLETED and next_archive.row_count == 400_000


def test_worker_killed_mid_restore_is_reaped_and_the_target_is_unchanged(solo_worker, admin, make_fractal, seed_rows):
    source, target = make_fractal(), make_fractal()
    seed_rows(source, 400_000, days=60, seed=9)
    seed_rows(target, 1_000, seed=10)
    archive = services.request_archive(admin, source, enqueue=False)
    services.run_archive(archive.id)
    archive.refresh_from_db()
    before = checksum(target)

    job = services.request_restore(admin, archive, target=target, enqueue=False)
    restore_archive.apply_async([str(job.id)], queue=solo_worker.queue)

    wait_until(solo_worker.is_stopped, 120, 0.05, "the worker to be mid-restore")
    assert job.staging_table in staging_tables()
    solo_worker.kill()
    job.refresh_from_db()
    assert not promote.is_committed(job), "killed too late: the rows were already verified"

    job = reap_when_lock_lapses(job)
    assert job.status == RestoreJob.Status.FAILED and "worker stopped" in job.error
    assert checksum(target) == before
    assert staging_tables() == []
    assert not FractalClaim.objects.exists()
    again = services.request_restore(admin, archive, target=target, enqueue=False)
    services.run_restore(again.id)
    assert checksum(target) == checksum(source)


class _NoHeartbeat:
    def progress(self, done, expected=None, phase=None):
        pass

    def check(self):
        pass


class SimulatedCrash(BaseException):
    """The worker process dying: no except or finally block of the service gets to run."""


def test_worker_dying_mid_promotion_is_finished_by_the_reaper_without_duplicates(
    admin, make_fractal, seed_rows, monkeypatch
):
    from strix import locks

    source, target = make_fractal(), make_fractal()
    seed_rows(source, 30_000, days=95, seed=12)  # four monthly partitions or more
    seed_rows(target, 500, seed=13)
    archive = services.request_archive(admin, source, enqueue=False)
    services.run_archive(archive.id)
    archive.refresh_from_db()

    job = services.request_restore(admin, archive, target=target, enqueue=False)
    assert start_job(RestoreJob, job.pk, RestoreJob.Status.RESTORING)
    job.refresh_from_db()
    claim = Claim.of(job)
    stage(job, claim, _NoHeartbeat())
    promote.commit(job, claim)
    assert len(job.promotion["partitions"]) >= 4

    attach = logstore.attach_partition
    calls = []

    def attach_then_die(staging, partition):
        calls.append(partition)
        attach(staging, partition)
        if len(calls) == 2:
            raise SimulatedCrash()  # after the attach, before it was recorded: the hardest moment

    monkeypatch.setattr(logstore, "attach_partition", attach_then_die)
    with pytest.raises(SimulatedCrash):
        promote.roll_forward(job, claim)
    monkeypatch.setattr(logstore, "attach_partition", attach)
    locks.release_fractal_lock(str(target.id), job.lock_token)  # as its TTL would

    assert str(job.pk) in services.reap_stale_jobs(now=datetime.now(UTC) + timedelta(seconds=60))
    job.refresh_from_db()
    assert job.status == RestoreJob.Status.COMPLETED and job.rows_restored == 30_000
    assert checksum(target) == checksum(source)
    assert staging_tables() == []
    assert not FractalClaim.objects.exists()


def test_progress_is_in_the_celery_task_state_that_flower_shows(celery_worker, admin, make_fractal, seed_rows):
    from celery.result import AsyncResult

    fractal = make_fractal()
    seed_rows(fractal, 200_000, days=40, seed=14)
    archive = services.request_archive(admin, fractal)
    task = AsyncResult(str(archive.id))  # the task id is the archive's id
    progress = wait_until(lambda: task.state == "PROGRESS" and task.info, 60, 0.01, "a PROGRESS state")
    assert progress["rows_expected"] == 200_000 and progress["rows_done"] >= 0
    assert task.get(timeout=120) == {"archive_id": str(archive.id), "status": "completed", "rows": 200_000}
