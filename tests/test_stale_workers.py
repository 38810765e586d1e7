"""A worker that pauses (SIGSTOP) past its claim and wakes up (SIGCONT) later writes nothing.

Real Celery worker processes are frozen at named points (strix.failpoints: the worker sends itself
SIGSTOP there, so the pause lands exactly between a check and the statement it guards); the test then
lets the lock lapse, runs the reaper and a second operation on the same fractal, and continues the
worker. The target's rows and every job record must be as if the stale worker had never woken up.
"""

import signal
import time
from datetime import UTC, datetime, timedelta

import pytest
from celery.result import AsyncResult

from archives import services
from archives.models import Archive, FractalClaim, RestoreJob
from archives.services.promote import STAGING_PREFIX
from archives.tasks import archive_fractal, restore_archive
from strix import logstore
from strix.storage import get_store
from tests.celery_worker import wait_until
from tests.jobs import archive_in_process, reap_when_lock_lapses

pytestmark = pytest.mark.django_db(transaction=True)


def checksum(fractal):
    return logstore.fractal_checksum(str(fractal.id))


def combined(*sums):
    return sum(c for c, _ in sums), sum(t for _, t in sums) % 2**64


def frozen_restore(failpoint_worker, admin, archive, target, failpoint):
    """Queue a replace-restore to a worker that freezes itself at ``failpoint``; returns once it has."""
    worker = failpoint_worker(failpoint)
    job = services.request_restore(admin, archive, target=target, enqueue=False)
    restore_archive.apply_async([str(job.id)], queue=worker.queue, task_id=str(job.id))
    wait_until(worker.is_stopped, 120, 0.05, f"the worker to stop at {failpoint}")
    return worker, job


def record(job):
    job.refresh_from_db()
    fields = ("status", "error", "finished_at", "fence", "heartbeat_at", "progress_rows")
    extra = ("rows_restored", "promotion", "staging_table") if isinstance(job, RestoreJob) else ("row_count",)
    return {name: getattr(job, name) for name in fields + extra}


def continue_and_finish(worker, task_id):
    worker.signal(signal.SIGCONT)
    result = AsyncResult(task_id)
    try:
        wait_until(result.ready, timeout=120, interval=0.2, what="the continued worker to finish its task")
    except AssertionError as e:  # say where it stands: its log, and the deletions ClickHouse has not done
        pending = logstore.execute(
            "SELECT table, mutation_id, command, parts_to_do FROM system.mutations WHERE is_done = 0"
        )
        log = worker.log_path.read_text()[-4000:]
        raise AssertionError(f"{e}; mutations pending: {pending}; worker log:\n{log}") from e
    return worker.log_path.read_text()


# Partition count of the source below (rows over 95 days: four or five monthly partitions).
@pytest.mark.parametrize(
    "failpoint",
    ["restore.before-clear", "restore.before-attach#1", "restore.before-attach#2", "restore.after-attach#4"],
    ids=["before-clear", "between-clear-and-first-attach", "between-attaches", "after-last-attach"],
)
def test_a_restore_worker_paused_past_its_claim_writes_nothing_when_it_wakes(
    failpoint_worker, admin, make_fractal, seed_rows, failpoint
):
    source, target, other = make_fractal(), make_fractal(), make_fractal()
    seed_rows(source, 30_000, days=95, seed=21)
    seed_rows(target, 1_000, seed=22)
    seed_rows(other, 2_000, seed=23)
    archive, second_archive = archive_in_process(admin, source), archive_in_process(admin, other)
    worker, job = frozen_restore(failpoint_worker, admin, archive, target, failpoint)

    job = reap_when_lock_lapses(job)
    assert job.status == RestoreJob.Status.COMPLETED and job.rows_restored == 30_000, job.error
    assert checksum(target) == checksum(source)
    assert not FractalClaim.objects.exists()

    # A second operation on the same fractal while the first worker is still frozen.
    second = services.request_restore(admin, second_archive, target=target, clear_existing=False, enqueue=False)
    services.run_restore(second.id)
    second.refresh_from_db()
    assert second.status == RestoreJob.Status.COMPLETED, second.error
    expected = combined(checksum(source), checksum(other))
    assert checksum(target) == expected
    before = record(job), record(second)

    log = continue_and_finish(worker, str(job.id))
    assert "writing nothing more" in log
    assert checksum(target) == expected
    assert (record(job), record(second)) == before
    assert logstore.tables_with_prefix(STAGING_PREFIX) == []
    assert not FractalClaim.objects.exists()


@pytest.mark.parametrize("failpoint", ["archive.before-publish", "archive.after-publish"])
def test_an_archive_worker_paused_past_its_claim_leaves_no_file_and_a_true_record(
    failpoint_worker, admin, make_fractal, seed_rows, failpoint
):
    fractal = make_fractal(max_archives=1)
    seed_rows(fractal, 20_000, days=20, seed=24)
    kept = archive_in_process(admin, fractal)
    worker = failpoint_worker(failpoint)

    archive = services.request_archive(admin, fractal, enqueue=False)
    archive_fractal.apply_async([str(archive.id)], queue=worker.queue, task_id=str(archive.id))
    wait_until(worker.is_stopped, 120, 0.05, f"the worker to stop at {failpoint}")

    archive = reap_when_lock_lapses(archive)
    assert archive.status == Archive.Status.FAILED and "worker stopped" in archive.error
    store = get_store("archives")
    assert list(store.base.rglob(f"*{archive.id}*")) == []
    # The stale archive must not prune the one archive max_archives=1 keeps, nor a newer one.
    newer = archive_in_process(admin, fractal)
    assert not Archive.objects.filter(pk=kept.pk).exists()  # pruned by the newer archive, as it should be
    before = record(archive), record(newer)

    log = continue_and_finish(worker, str(archive.id))
    assert "writing nothing more" in log
    assert (record(archive), record(newer)) == before
    assert list(store.base.rglob(f"*{archive.id}*")) == []
    assert store.exists(newer.file_name)
    assert not FractalClaim.objects.exists()


def test_a_restore_worker_waking_during_the_reapers_promotion_cannot_attach_twice(
    failpoint_worker, admin, make_fractal, seed_rows, monkeypatch
):
    """The worker froze before attaching partition 2; it wakes while the reaper promotes that partition."""
    source, target = make_fractal(), make_fractal()
    seed_rows(source, 30_000, days=95, seed=25)
    seed_rows(target, 1_000, seed=26)
    archive = archive_in_process(admin, source)
    worker, job = frozen_restore(failpoint_worker, admin, archive, target, "restore.before-attach#2")
    wait_until(lambda: _lock_lapsed(job), 30, 0.2, "the lock to lapse")

    attach, woken = logstore.attach_partition, []

    def wake_the_worker_first(staging, partition):
        if not woken:
            woken.append(continue_and_finish(worker, str(job.id)))
        attach(staging, partition)

    monkeypatch.setattr(logstore, "attach_partition", wake_the_worker_first)
    job = reap_when_lock_lapses(job)
    assert woken and "writing nothing more" in woken[0]
    assert job.status == RestoreJob.Status.COMPLETED and job.rows_restored == 30_000, job.error
    assert checksum(target) == checksum(source)
    assert logstore.tables_with_prefix(STAGING_PREFIX) == []


def _lock_lapsed(job):
    from strix import locks

    return not locks.fractal_lock_held(str(job.target_id), job.lock_token)


def test_a_job_alive_but_without_progress_is_failed_after_the_stall_limit(
    failpoint_worker, admin, make_fractal, seed_rows, settings
):
    settings.STRIX_JOB_STALL_SECONDS = 3
    source, target = make_fractal(), make_fractal()
    seed_rows(source, 50_000, days=10, seed=27)
    archive = archive_in_process(admin, source)
    worker = failpoint_worker("restore.staging#2:hang")  # its heartbeat goes on; its rows do not
    job = services.request_restore(admin, archive, target=target, enqueue=False)
    restore_archive.apply_async([str(job.id)], queue=worker.queue, task_id=str(job.id))
    wait_until(lambda: RestoreJob.objects.get(pk=job.pk).progress_rows > 0, 60, 0.1, "the restore to progress")

    reaped = wait_until(lambda: services.reap_stale_jobs(), timeout=30, interval=0.5, what="the stall to be seen")
    assert reaped == [str(job.id)]
    job.refresh_from_db()
    assert job.status == RestoreJob.Status.FAILED and "stalled: no progress for 3s" in job.error
    assert not FractalClaim.objects.exists()
    again = services.request_restore(admin, archive, target=target, enqueue=False)  # the fractal is free
    services.run_restore(again.id)
    assert checksum(target) == checksum(source)
    worker.kill()


def test_the_reaper_finishes_its_pass_within_its_bound_while_a_stopped_worker_holds_a_staging_insert(
    failpoint_worker, admin, make_fractal, seed_rows
):
    from archives.services.reaper import STATEMENT_BOUND_SECONDS

    source, target = make_fractal(), make_fractal()
    seed_rows(source, 600_000, days=30, seed=28)
    seed_rows(target, 1_000, seed=29)
    before_target = checksum(target)
    archive = archive_in_process(admin, source)
    # Frozen after 20 blocks of about 1 MiB: both INSERT streams are open, mid-body, on the server.
    worker, job = frozen_restore(failpoint_worker, admin, archive, target, "restore.staging#20:stop")
    wait_until(lambda: _lock_lapsed(job), 30, 0.2, "the lock to lapse")

    started = time.monotonic()
    reaped = services.reap_stale_jobs(now=datetime.now(UTC) + timedelta(seconds=60))
    elapsed = time.monotonic() - started
    assert reaped == [str(job.id)]
    # One blocked DROP, bounded; the rest of the pass (the orphan sweep included) does not wait on it again.
    assert elapsed < STATEMENT_BOUND_SECONDS + 5, f"the reaper's pass took {elapsed:.1f}s"
    job.refresh_from_db()
    assert job.status == RestoreJob.Status.FAILED and "worker stopped" in job.error
    assert not FractalClaim.objects.exists()
    after_reap = record(job)

    log = continue_and_finish(worker, str(job.id))
    assert "writing nothing more" in log
    assert record(job) == after_reap
    assert checksum(target) == before_target
    wait_until(
        lambda: services.reap_stale_jobs() == [] and logstore.tables_with_prefix(STAGING_PREFIX) == [],
        60, 1, "the orphan staging table to be dropped",
    )  # fmt: skip


def test_a_retention_run_frozen_before_its_batch_deletion_deletes_nothing_once_taken_over(
    failpoint_worker, make_fractal
):
    """The batch's claims were proven held, then the worker froze; the reaper took them over. Resumed,
    its one mutation for the whole batch must match no row of any fractal, and it reports nothing."""
    from archives.models import ArchiveEvent
    from archives.services.retention import enforce_all
    from archives.tasks import enforce_retention
    from strix import locks

    now = datetime.now(UTC)
    fractals = [make_fractal(retention_days=3) for _ in range(3)]
    for fractal in fractals:
        rows = [
            (now - timedelta(days=age), f"{fractal.id}-{age}", "old", "{}", now - timedelta(days=age))
            for age in (1, 5, 6, 9)
        ]
        logstore.insert_rows(str(fractal.id), rows)
    worker = failpoint_worker("retention.before-delete")
    task = enforce_retention.apply_async(queue=worker.queue)
    wait_until(worker.is_stopped, 120, 0.05, "the worker to stop before its deletion")
    assert FractalClaim.objects.count() == 3

    for fractal in fractals:  # the claims' locks lapse (one hour; removed here as Redis would at expiry)
        locks.connection().delete(f"strix:fractal-lock:{fractal.id}")
    services.reap_stale_jobs()
    assert not FractalClaim.objects.exists()

    worker.signal(signal.SIGCONT)
    wait_until(AsyncResult(task.id).ready, timeout=120, interval=0.2, what="the resumed run to end")
    assert [logstore.count_rows(str(f.id)) for f in fractals] == [4, 4, 4]
    assert worker.log_path.read_text().count("writing nothing more: its claim was taken over") == 3
    assert not ArchiveEvent.objects.filter(action="retention").exists()
    assert not FractalClaim.objects.exists()

    # The next run, alive throughout, deletes what it decides.
    results = enforce_all()
    assert all(len(r.deleted_days) == 3 for r in results)
    assert [logstore.count_rows(str(f.id)) for f in fractals] == [1, 1, 1]
