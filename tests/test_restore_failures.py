"""A restore that loses ClickHouse mid-staging, in a real worker whose connections pass through a proxy
the test cuts: the job reads Failed with its reason at once, the target is unchanged, and the staging
table the worker could not drop is dropped by the reaper's orphan pass later."""

import time

import pytest
from django.conf import settings

from archives import services
from archives.models import FractalClaim, RestoreJob
from archives.services import promote
from archives.tasks import restore_archive
from strix import logstore
from tests.celery_worker import wait_until
from tests.jobs import archive_in_process
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def clickhouse_proxies():
    cfg = settings.STRIX_CLICKHOUSE
    native, http = TcpProxy(cfg["port"]), TcpProxy(cfg["http_port"])
    yield native, http, f"clickhouse://{cfg['user']}:{cfg['password']}@127.0.0.1:{native.port}/?http_port={http.port}"
    native.stop()
    http.stop()


def test_a_restore_that_loses_clickhouse_mid_staging_is_failed_within_seconds_and_reaped_later(
    failpoint_worker, clickhouse_proxies, admin, make_fractal, seed_rows
):
    native, http, url = clickhouse_proxies
    source, target = make_fractal(), make_fractal()
    seed_rows(source, 30_000, days=10, seed=81)
    seed_rows(target, 1_000, seed=82)
    archive = archive_in_process(admin, source)
    before = logstore.fractal_checksum(str(target.id))
    worker = failpoint_worker("restore.staging#2:sleep4", env={"STRIX_CLICKHOUSE_URL": url})
    job = services.request_restore(admin, archive, target=target, enqueue=False)
    restore_archive.apply_async([str(job.id)], queue=worker.queue, task_id=str(job.id))
    staging = f"{promote.STAGING_PREFIX}{job.id.hex}_"
    wait_until(lambda: logstore.tables_with_prefix(staging), 60, 0.05, "the staging table")

    native.cut()
    http.cut()  # ClickHouse is gone for the worker from here on; it runs on for this test process
    cut_at = time.monotonic()

    def ended():
        job.refresh_from_db()
        return job.status not in RestoreJob.ACTIVE

    wait_until(ended, 10, 0.1, "the restore to be recorded as failed")
    assert job.status == RestoreJob.Status.FAILED and "ClickHouse" in job.error, job.error
    assert time.monotonic() - cut_at < 10
    assert not FractalClaim.objects.filter(fractal=target).exists()  # the fractal is free again
    assert logstore.fractal_checksum(str(target.id)) == before
    wait_until(lambda: "reaper drops it later" in RestoreJob.objects.get(pk=job.pk).error, 30, 0.1, "the note")
    assert logstore.tables_with_prefix(staging)  # left behind: the worker could not reach ClickHouse

    services.reap_stale_jobs()
    assert not logstore.tables_with_prefix(staging)
    assert logstore.fractal_checksum(str(target.id)) == before
