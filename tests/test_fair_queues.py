"""Fair queues, with two real workers, one per queue: one fractal's searches cannot hold back another
fractal's archive, and a fractal gets at most STRIX_SEARCHES_PER_FRACTAL searches queued or running."""

import signal
import uuid

import pytest

from archives import services
from archives.models import Archive, ArchiveSearch
from archives.services import search_jobs
from archives.services.options import RestoreOptions
from archives.services.queue import job_queue, search_queue
from tests.celery_worker import WorkerProcess, wait_until
from tests.jobs import archive_in_process

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_archive_of_b_starts_while_a_has_its_search_cap_queued_and_a_third_search_is_refused(
    tmp_path, settings, admin, make_fractal, seed_rows
):
    settings.CELERY_TASK_DEFAULT_QUEUE = f"fair-{uuid.uuid4().hex[:8]}"  # queues of this test's own
    settings.STRIX_SEARCHES_PER_FRACTAL = 2
    noisy, quiet = make_fractal(), make_fractal()
    seed_rows(noisy, 5_000, days=3, seed=97)
    seed_rows(quiet, 5_000, days=3, seed=98)
    archive = archive_in_process(admin, noisy)
    env = {"STRIX_CELERY_QUEUE": settings.CELERY_TASK_DEFAULT_QUEUE}
    searcher = WorkerProcess(tmp_path, pool="solo", concurrency=1, queue=search_queue(), env=env)
    archiver = WorkerProcess(tmp_path, pool="solo", concurrency=1, queue=job_queue(), env=env)
    try:
        searcher.signal(signal.SIGSTOP)  # the searches' worker is busy for as long as this test likes
        searches = [search_jobs.request_search(admin, archive, RestoreOptions.parse(contains="sshd")) for _ in "ab"]
        with pytest.raises(search_jobs.SearchCapReached, match=r"2 searches .*STRIX_SEARCHES_PER_FRACTAL"):
            search_jobs.request_search(admin, archive, RestoreOptions())

        other = services.request_archive(admin, quiet)  # goes to the archive queue, not behind the searches

        def archived():
            other.refresh_from_db()
            return other.status == Archive.Status.COMPLETED

        wait_until(archived, 60, 0.2, "the other fractal's archive to complete")
        assert all(ArchiveSearch.objects.get(pk=s.pk).status == ArchiveSearch.Status.PENDING for s in searches)

        searcher.signal(signal.SIGCONT)
        wait_until(
            lambda: all(ArchiveSearch.objects.get(pk=s.pk).status == ArchiveSearch.Status.COMPLETED for s in searches),
            60, 0.2, "the searches to complete",
        )  # fmt: skip
        assert search_jobs.request_search(admin, archive, RestoreOptions()).status == ArchiveSearch.Status.PENDING
    finally:
        searcher.signal(signal.SIGCONT)
        searcher.stop()
        archiver.stop()
