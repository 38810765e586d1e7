"""Workers scale out: two worker processes archive two fractals at the same time (no global lock), and
both archives are exact (real Celery workers, real ClickHouse, disk storage)."""

import pytest

from archives import services
from archives.models import Archive
from archives.tasks import archive_fractal
from strix import logstore
from tests.celery_worker import wait_for_job

pytestmark = pytest.mark.django_db(transaction=True)


def test_two_workers_archive_two_fractals_at_the_same_time_and_both_are_exact(
    failpoint_worker, admin, make_fractal, seed_rows
):
    fractals = [make_fractal(), make_fractal()]
    for n, fractal in enumerate(fractals):
        seed_rows(fractal, 20_000, days=4, seed=100 + n)
    # Each worker pauses 3 s in the middle of its stream, so the two archives surely overlap.
    workers = [failpoint_worker("archive.streaming#2:sleep3") for _ in fractals]
    archives = []
    for worker, fractal in zip(workers, fractals, strict=True):
        archive = services.request_archive(admin, fractal, enqueue=False)
        archive_fractal.apply_async([str(archive.id)], queue=worker.queue, task_id=str(archive.id))
        archives.append(archive)
    archives = [wait_for_job(archive) for archive in archives]
    assert [a.status for a in archives] == [Archive.Status.COMPLETED] * 2, [a.error for a in archives]
    first, second = archives
    assert first.started_at < second.finished_at and second.started_at < first.finished_at  # they overlapped

    for archive, fractal in zip(archives, fractals, strict=True):
        target = make_fractal()
        job = services.request_restore(admin, archive, target=target, enqueue=False)
        services.run_restore(job.id)
        assert logstore.fractal_checksum(str(target.id)) == logstore.fractal_checksum(str(fractal.id))
