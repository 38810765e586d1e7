"""Strix on a replicated (1 shard x 2 replicas) and a sharded (2 shards x 1 replica) ClickHouse cluster.

Real ZooKeeper and ClickHouse servers (scripts/cluster.sh). The cycle's figures must equal those of the
session's single server; then the hazards of replication found on 18.16 (docs/OPERATIONS.md): a replica
that lacks a fence, a replica restarted just before a clear, a replica or ZooKeeper that stops answering.
"""

import signal
import time
from datetime import UTC, datetime, timedelta

import pytest

from archives import services
from archives.models import Archive, FractalClaim, RestoreJob
from archives.services.options import RestoreOptions
from archives.services.retention import enforce_retention
from strix import logstore
from strix.fractals.demo import generate_rows
from strix.logstore import cluster, fences
from tests.celery_worker import wait_until
from tests.clickhouse_cluster import LAYOUTS
from tests.jobs import archive_in_process

pytestmark = pytest.mark.django_db(transaction=True)

# Fixed, so that every layout is given the same rows (a day boundary inside the data, and old days).
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
DAY = datetime(2026, 11, 10, tzinfo=UTC)


def seed(fractal, count, seed_number, days=30):
    logstore.insert_rows(str(fractal.id), generate_rows(count, days=days, seed=seed_number, now=NOW))


def checksum(fractal):
    return logstore.fractal_checksum(str(fractal.id))


def restore(admin, archive, target, clear, options=None) -> RestoreJob:
    job = services.request_restore(admin, archive, target=target, clear_existing=clear, enqueue=False, options=options)
    services.run_restore(job.id)
    job.refresh_from_db()
    return job


def run_cycle(admin, make_fractal):
    """Archive, restore four ways, retention; returns (figures, fractals). Figures hold no fractal id."""
    source = make_fractal(archive_schedule="daily", retention_days=90)  # day checksums recorded, none cut
    targets = [make_fractal() for _ in range(4)]
    seed(source, 6_000, 7)
    for number, target in enumerate(targets):
        seed(target, 300 + 100 * number, 8 + number)
    archive = archive_in_process(admin, source)
    # Rows and row-hash sums per day; the third figure's hash is salted per fractal, and these are
    # different fractals holding the same rows.
    days = sorted((day, values[:2]) for day, values in archive.day_checksums.items())
    figures = {"archive": (archive.row_count, days)}
    one_day = RestoreOptions(DAY, DAY + timedelta(days=1))
    for name, target, clear, options in (
        ("replace whole", targets[0], True, None),
        ("append whole", targets[1], False, None),
        ("replace one day", targets[2], True, one_day),
        ("append one day", targets[3], False, one_day),
    ):
        job = restore(admin, archive, target, clear, options)
        assert job.status == RestoreJob.Status.COMPLETED, (name, job.error)
        figures[name] = (job.rows_restored, checksum(target))
    source.retention_days = 10
    source.save()
    result = enforce_retention(source, now=NOW)
    figures["retention"] = (result.deleted_days, result.kept_days, checksum(source))
    return figures, [source, *targets]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_the_archive_restore_retention_cycle_gives_the_single_servers_checksums(
    clickhouse_cluster, layout, admin, make_fractal
):
    expected, _ = run_cycle(admin, make_fractal)
    assert len(expected["retention"][0]) >= 18  # days older than 10 + 1 were archived and deleted
    with clickhouse_cluster.layout(layout):
        assert cluster.cluster_name() and cluster.sharded() == (layout == "sharded")
        figures, fractals = run_cycle(admin, make_fractal)
        assert figures == expected
        for fractal in fractals:
            fid = str(fractal.id)
            if layout == "repl":  # the other replica holds the same rows
                clickhouse_cluster.sync(clickhouse_cluster.ch2)
                with logstore.pinned_to(clickhouse_cluster.ch2):
                    assert logstore.fractal_checksum(fid) == checksum(fractal)
            else:  # each fractal on its own shard only, and the Distributed table sees exactly those rows
                with logstore.pinned_to(other_shard(clickhouse_cluster, fid)):
                    assert logstore.count_rows(fid) == 0
                query = f"SELECT count() FROM {logstore.database()}.logs WHERE fractal_id = %(fid)s"
                assert logstore.execute(query, {"fid": fid})[0][0] == checksum(fractal)[0]
        assert not FractalClaim.objects.exists()
        assert all(logstore.tables_with_prefix("restore_staging_") == [] for _ in logstore.every_shard())


def test_a_cluster_with_unreplicated_tables_is_refused_with_a_clear_message(clickhouse_cluster, settings):
    with clickhouse_cluster.layout("repl"):
        db = logstore.database()
        logstore.execute(f"DROP TABLE {db}.logs ON CLUSTER strix_repl")
        logstore.execute(
            f"CREATE TABLE {db}.logs (fractal_id String, timestamp DateTime('UTC'), log_id String, raw_log String, "
            "fields String, ingest_timestamp DateTime('UTC')) ENGINE = MergeTree ORDER BY (fractal_id, timestamp)"
        )
        with pytest.raises(logstore.LogStoreError, match="not a ReplicatedMergeTree"):
            logstore.ensure_schema()
        from strix.checks import check_clickhouse_cluster

        (error,) = check_clickhouse_cluster()
        assert error.id == "strix.E006" and "not a ReplicatedMergeTree" in error.msg


def archived_pair(admin, make_fractal, seed_number: int, target_rows: int):
    """A source of 2,000 rows with its archive, and a target of ``target_rows`` rows with its checksum."""
    source, target = make_fractal(), make_fractal()
    seed(source, 2_000, seed_number)
    seed(target, target_rows, seed_number + 1)
    return source, target, archive_in_process(admin, source), checksum(target)


def plant_fence(fractal, fence):
    """What a replica that saw another owner's fence would evaluate: a higher fence for the fractal."""
    logstore.execute(
        f"INSERT INTO {logstore.database()}.claim_fences (fractal_id, fence) VALUES",
        [(str(fractal.id), fence)],
        node=cluster.owner_node(str(fractal.id)),  # the fractal's shard keeps its fences
    )


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_clear_that_deleted_nothing_is_never_attached_on_top_of(clickhouse_cluster, layout, admin, make_fractal):
    """A fenced DELETE reported done while it deleted nothing (a replica that evaluated the fence as
    another owner's): the restore proves the clear, finds the rows, fails and attaches nothing."""
    with clickhouse_cluster.layout(layout):
        source, target, archive, before = archived_pair(admin, make_fractal, 31, 500)
        job = services.request_restore(admin, archive, target=target, enqueue=False)
        plant_fence(target, job.fence + 1_000)
        services.run_restore(job.id)
        job.refresh_from_db()
        assert job.status == RestoreJob.Status.FAILED
        assert "could not be proved deleted" in job.error and "nothing was attached" in job.error
        assert checksum(target) == before
        assert not FractalClaim.objects.exists()


def stop_fetches(node, table):
    logstore.execute(f"SYSTEM STOP FETCHES {logstore.database()}.{table}", node=node)


def start_fetches(node, table):
    logstore.execute(f"SYSTEM START FETCHES {logstore.database()}.{table}", node=node)


def test_a_replica_that_cannot_receive_the_fence_fails_the_restore_before_anything_changes(
    clickhouse_cluster, admin, make_fractal, monkeypatch
):
    monkeypatch.setattr(fences, "QUORUM_TIMEOUT_MS", 2_000)
    with clickhouse_cluster.layout("repl"):
        source, target, archive, before = archived_pair(admin, make_fractal, 41, 500)
        stop_fetches(clickhouse_cluster.ch2, "claim_fences")  # the lagging replica of the facts file (H1b)
        try:
            job = restore(admin, archive, target, clear=True)
        finally:
            start_fetches(clickhouse_cluster.ch2, "claim_fences")
        assert job.status == RestoreJob.Status.FAILED
        assert "could not be claimed in ClickHouse" in job.error and "replicas" in job.error
        assert checksum(target) == before
        assert not FractalClaim.objects.exists()
        # Once the replica catches up, the same restore goes through.
        wait_until(lambda: _quorum_free(), 30, 0.5, "the quorum of claim_fences to recover")
        again = restore(admin, archive, target, clear=True)
        assert again.status == RestoreJob.Status.COMPLETED, again.error
        assert checksum(target) == checksum(source)


def _quorum_free() -> bool:
    try:
        fences.record_fence("quorum-probe", 1)
    except logstore.LogStoreError:
        return False
    return True


def test_a_replica_restarted_just_before_the_clear_does_not_make_the_restore_attach_on_top_of_old_rows(
    clickhouse_cluster, failpoint_worker, admin, make_fractal
):
    """H2: a replica restarted within its ZooKeeper session lists no mutation and runs none for ~10 s,
    yet accepts the DELETE. The restore must wait for its deletion, not take "nothing pending" for done."""
    from archives.tasks import restore_archive

    with clickhouse_cluster.layout("repl") as variables:
        source, target = make_fractal(), make_fractal()
        seed(source, 3_000, 51)
        seed(target, 800, 52)
        archive = archive_in_process(admin, source)
        worker = failpoint_worker("restore.before-clear", env=variables)
        job = services.request_restore(admin, archive, target=target, enqueue=False)
        restore_archive.apply_async([str(job.id)], queue=worker.queue, task_id=str(job.id))
        wait_until(worker.is_stopped, 120, 0.05, "the worker to stop before its clear")
        clickhouse_cluster.kill("ch1")
        clickhouse_cluster.restart("ch1")
        restarted = time.monotonic()
        worker.signal(signal.SIGCONT)
        wait_until(lambda: _ended(job), 120, 0.2, "the restore to end")
        job.refresh_from_db()
        assert job.status == RestoreJob.Status.COMPLETED, job.error
        assert checksum(target) == checksum(source)
        clickhouse_cluster.sync(clickhouse_cluster.ch2)
        with logstore.pinned_to(clickhouse_cluster.ch2):
            assert logstore.fractal_checksum(str(target.id)) == checksum(source)
        log = worker.log_path.read_text()
        assert "succeeded" in log, log[-2000:]
        print(f"restore ended {time.monotonic() - restarted:.1f}s after the replica restarted")


def _ended(job) -> bool:
    job.refresh_from_db()
    return job.status not in RestoreJob.ACTIVE


def test_a_stopped_replica_fails_claims_truthfully_while_archives_go_on(
    clickhouse_cluster, admin, make_fractal, monkeypatch
):
    """SIGSTOP a replica: archives still read and complete; a restore and a retention run fail with a
    message, nothing changed; after SIGCONT both go through."""
    monkeypatch.setattr(fences, "QUORUM_TIMEOUT_MS", 2_000)
    with clickhouse_cluster.layout("repl"):
        source, target = make_fractal(archive_schedule="daily", retention_days=90), make_fractal()
        seed(source, 3_000, 61)
        seed(target, 700, 62)
        first = archive_in_process(admin, source)
        before = checksum(target), checksum(source)
        clickhouse_cluster.signal("ch2", signal.SIGSTOP)
        try:
            during = archive_in_process(admin, source, full_read=True)  # reads ch1 only
            assert during.row_count == first.row_count and during.day_checksums == first.day_checksums
            job = restore(admin, archive=first, target=target, clear=True)
            assert job.status == RestoreJob.Status.FAILED and "replicas" in job.error, job.error
            source.retention_days = 10
            source.save()
            with pytest.raises(logstore.FenceNotRecorded):
                enforce_retention(source, now=NOW)
            assert (checksum(target), checksum(source)) == before
        finally:
            clickhouse_cluster.signal("ch2", signal.SIGCONT)
        assert not FractalClaim.objects.exists()
        wait_until(_quorum_free, 60, 0.5, "the quorum of claim_fences to recover")
        job = restore(admin, archive=first, target=target, clear=True)
        assert job.status == RestoreJob.Status.COMPLETED, job.error
        assert checksum(target) == checksum(source)
        assert enforce_retention(source, now=NOW).deleted_days
        clickhouse_cluster.sync(clickhouse_cluster.ch2)
        with logstore.pinned_to(clickhouse_cluster.ch2):
            assert logstore.fractal_checksum(str(target.id)) == checksum(target)
            assert logstore.fractal_checksum(str(source.id)) == checksum(source)


def test_zookeeper_stopped_for_ten_seconds_fails_the_restore_truthfully_and_nothing_is_lost(
    clickhouse_cluster, admin, make_fractal
):
    with clickhouse_cluster.layout("repl"):
        source, target, archive, before = archived_pair(admin, make_fractal, 71, 600)
        clickhouse_cluster.signal("zk", signal.SIGSTOP)
        stopped = time.monotonic()
        try:
            job = restore(admin, archive, target, clear=True)
            assert job.status == RestoreJob.Status.FAILED, job.error
            assert "ClickHouse" in job.error
            assert checksum(target) == before  # reads still work without ZooKeeper
            time.sleep(max(0.0, 10 - (time.monotonic() - stopped)))
        finally:
            clickhouse_cluster.signal("zk", signal.SIGCONT)
        assert not FractalClaim.objects.exists()
        wait_until(_quorum_free, 60, 0.5, "the replicas to reconnect to ZooKeeper")
        job = restore(admin, archive, target, clear=True)
        assert job.status == RestoreJob.Status.COMPLETED, job.error
        assert checksum(target) == checksum(source)
        assert Archive.objects.get(pk=archive.pk).status == Archive.Status.COMPLETED


@pytest.mark.parametrize("failpoint", ["restore.before-clear", "restore.before-attach#2"])
def test_a_stale_restore_worker_writes_nothing_when_it_wakes_on_the_replicated_cluster(
    clickhouse_cluster, failpoint_worker, admin, make_fractal, seed_rows, failpoint
):
    """The single server's stale-worker test, unchanged, with every ClickHouse statement (the worker's,
    the reaper's, the second restore's) on the replicated cluster; then both replicas agree."""
    from tests import test_stale_workers

    with clickhouse_cluster.layout("repl"):  # worker subprocesses inherit the layout's environment
        test_stale_workers.test_a_restore_worker_paused_past_its_claim_writes_nothing_when_it_wakes(
            failpoint_worker, admin, make_fractal, seed_rows, failpoint
        )
        _replicas_agree(clickhouse_cluster)


def test_a_stale_retention_run_deletes_nothing_once_taken_over_on_the_replicated_cluster(
    clickhouse_cluster, failpoint_worker, make_fractal
):
    from tests import test_stale_workers

    with clickhouse_cluster.layout("repl"):
        test_stale_workers.test_a_retention_run_frozen_before_its_batch_deletion_deletes_nothing_once_taken_over(
            failpoint_worker, make_fractal
        )
        _replicas_agree(clickhouse_cluster)


def _replicas_agree(clickhouse_cluster):
    table = f"{logstore.database()}.logs"
    query = f"SELECT fractal_id, count(), sum(cityHash64(timestamp, log_id, raw_log)) FROM {table} GROUP BY fractal_id"
    clickhouse_cluster.sync(clickhouse_cluster.ch2)
    assert sorted(logstore.execute(query, node=clickhouse_cluster.ch1)) == sorted(
        logstore.execute(query, node=clickhouse_cluster.ch2)
    )


@pytest.mark.parametrize("failpoint", ["restore.before-clear", "retention.before-delete"])
def test_a_replica_stopped_in_the_middle_of_a_restore_or_retention_run_catches_up_after(
    clickhouse_cluster, failpoint_worker, admin, make_fractal, failpoint
):
    """The fence is on both replicas; then the second one is frozen (SIGSTOP) while the worker clears
    and attaches, or deletes old days, on the first. The job completes there; once continued, the
    second replica holds the same rows."""
    from archives.tasks import enforce_retention as retention_task
    from archives.tasks import restore_archive

    with clickhouse_cluster.layout("repl"):
        restoring = failpoint.startswith("restore")
        # An archive holds only a fractal's retention window: the restored source keeps every row.
        source, target = make_fractal(retention_days=None if restoring else 3), make_fractal()
        logstore.insert_rows(str(source.id), generate_rows(2_000, days=10, seed=81))
        seed(target, 600, 82)
        worker = failpoint_worker(failpoint)
        if restoring:
            archive = archive_in_process(admin, source)
            job = services.request_restore(admin, archive, target=target, enqueue=False)
            restore_archive.apply_async([str(job.id)], queue=worker.queue, task_id=str(job.id))
        else:
            task = retention_task.apply_async(queue=worker.queue)
        wait_until(worker.is_stopped, 120, 0.05, f"the worker to stop at {failpoint}")
        clickhouse_cluster.signal("ch2", signal.SIGSTOP)
        try:
            worker.signal(signal.SIGCONT)
            if restoring:
                wait_until(lambda: _ended(job), 120, 0.2, "the restore to end")
                job.refresh_from_db()
                assert job.status == RestoreJob.Status.COMPLETED, job.error
                assert checksum(target) == checksum(source)
            else:
                from celery.result import AsyncResult

                wait_until(AsyncResult(task.id).ready, 120, 0.2, "the retention run to end")
                cutoff = datetime.now(UTC) - timedelta(days=3)
                assert logstore.count_rows(str(source.id), None, cutoff - timedelta(days=1)) == 0
                assert logstore.count_rows(str(source.id)) > 0
        finally:
            clickhouse_cluster.signal("ch2", signal.SIGCONT)
        _replicas_agree(clickhouse_cluster)
        assert not FractalClaim.objects.exists()


def test_a_retention_pass_over_fractals_on_both_shards_deletes_each_fractals_days_on_its_own_shard(
    clickhouse_cluster, make_fractal
):
    from archives.services.retention import enforce_all

    with clickhouse_cluster.layout("sharded"):
        fractals, owners = [], set()
        while len(owners) < 2 or len(fractals) < 4:  # fractals on both shards, whatever their random ids
            fractals.append(make_fractal(retention_days=3))
            owners.add(cluster.owner_node(str(fractals[-1].id)))
        for fractal in fractals:
            rows = [(NOW - timedelta(days=age), f"{fractal.id}-{age}", "old", "{}", NOW - timedelta(days=age))
                    for age in (1, 5, 6, 9)]  # fmt: skip
            logstore.insert_rows(str(fractal.id), rows)
        results = enforce_all(now=NOW)
        assert sorted(len(r.deleted_days) for r in results) == [3] * len(fractals)
        for fractal in fractals:
            fid = str(fractal.id)
            assert logstore.count_rows(fid) == 1
            with logstore.pinned_to(other_shard(clickhouse_cluster, fid)):
                assert logstore.count_rows(fid) == 0
        assert not FractalClaim.objects.exists()


def other_shard(clickhouse_cluster, fractal_id):
    """The node of the sharded layout that does not own ``fractal_id``."""
    ch1, ch2 = clickhouse_cluster.ch1, clickhouse_cluster.ch2
    return ch2 if cluster.owner_node(fractal_id) == ch1 else ch1


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_synthetic_archive_on_a_cluster_equals_a_full_one(clickhouse_cluster, layout, admin, make_fractal):
    """Each fractal's figures come from its own shard; the days that changed there are read fresh."""
    with clickhouse_cluster.layout(layout):
        for number in range(2):  # on a sharded cluster, most likely one on each shard
            fractal = make_fractal()
            seed(fractal, 1_500, 91 + number, days=6)
            first = archive_in_process(admin, fractal)
            at = NOW - timedelta(days=3, hours=2)  # late rows, all in one old day
            late = [(at, f"late-{number}-{i}", f"late row {i}", "{}", at) for i in range(5)]
            logstore.insert_rows(str(fractal.id), late)
            synthetic = archive_in_process(admin, fractal)
            full = archive_in_process(admin, fractal, full_read=True)
            assert synthetic.copied_from == first.id and synthetic.days_read == 1
            assert synthetic.days_copied == len(first.day_rows) - 1
            assert (synthetic.row_count, synthetic.day_checksums) == (full.row_count, full.day_checksums)
            assert synthetic.day_rows == full.day_rows
