"""Searching an archive in the background from the Manage tab, on the real services with real workers:
exact matches, the first 1,000 shown, the whole result downloadable as NDJSON for 24 hours, encrypted
at rest, and a worker paused past the reaper writing nothing when it wakes."""

import signal
import subprocess
from datetime import timedelta

import pytest
from celery.result import AsyncResult
from django.utils import timezone

from archives import services
from archives.models import ArchiveSearch
from archives.services import search_jobs
from archives.services.errors import ArchiveInUse
from archives.services.options import RestoreOptions
from archives.services.search import search_archive
from archives.tasks import search_archive_task
from strix import logstore
from strix.storage import get_store
from tests.celery_worker import wait_until
from tests.jobs import archive_in_process

pytestmark = pytest.mark.django_db(transaction=True)


def finished(search: ArchiveSearch, timeout: float = 120) -> ArchiveSearch:
    def done():
        search.refresh_from_db()
        return search.status not in ArchiveSearch.ACTIVE

    wait_until(done, timeout, 0.2, f"search {search.short_id} to finish")
    return search


def clickhouse_count(where: str) -> int:
    query = f"SELECT count() FROM {logstore.database()}.logs WHERE {where}"
    return int(subprocess.run(["clickhouse-client", "-q", query], capture_output=True, text=True, check=True).stdout)


def stored_bytes(name: str) -> bytes:
    with get_store("archives").open_read(name) as source:
        return source.read()


def test_a_background_search_keeps_its_matches_encrypted_for_24_hours(celery_worker, admin, make_fractal, seed_rows):
    source = make_fractal()
    seed_rows(source, 40_000, days=6, seed=71)
    archive = archive_in_process(admin, source)
    options = RestoreOptions.parse(contains="sshd")

    search = finished(search_jobs.request_search(admin, archive, options))
    assert search.status == ArchiveSearch.Status.COMPLETED, search.error
    expected = clickhouse_count(f"fractal_id = '{source.id}' AND position(raw_log, 'sshd') > 0")
    assert search.matches == expected > 1000 and search.rows_scanned == 40_000

    rows = search_jobs.preview(search)
    assert len(rows) == 1000 and all("sshd" in row["raw_log"] for row in rows)
    whole = b"".join(search_jobs.result_blocks(search))
    assert whole == b"".join(search_archive(archive, options)) and whole.count(b"\n") == expected
    at_rest = stored_bytes(search.result_file)
    assert at_rest.startswith(b"STRIXDP\n") and b"sshd" not in at_rest  # no plaintext in storage

    assert abs(search.expires_at - search.finished_at - timedelta(hours=24)) < timedelta(seconds=1)
    assert search_jobs.expire_searches(search.expires_at - timedelta(seconds=1)) == []
    assert search_jobs.expire_searches(search.expires_at) == [str(search.id)]
    search.refresh_from_db()
    assert search.status == ArchiveSearch.Status.EXPIRED and not get_store("archives").exists(search.result_file)
    with pytest.raises(search_jobs.ResultUnavailable, match="expired|Expired"):
        search_jobs.preview(search)

    # Deleting the archive deletes the copies of its rows that searches made.
    second = finished(search_jobs.request_search(admin, archive, RestoreOptions.parse(field_text="Channel=Security")))
    assert second.status == ArchiveSearch.Status.COMPLETED and get_store("archives").exists(second.result_file)
    services.delete_archive(admin, archive)
    assert not get_store("archives").exists(second.result_file)
    assert not ArchiveSearch.objects.filter(pk=second.pk).exists()


def test_the_manage_tab_searches_shows_the_first_matches_and_downloads_them(
    celery_worker, client, admin, make_user, make_fractal, seed_rows
):
    source = make_fractal()
    seed_rows(source, 5_000, days=3, seed=72)
    archive = archive_in_process(admin, source)
    client.force_login(admin)
    manage = f"/admin/fractals/fractal/{source.pk}/manage/"
    assert f'id="search-{archive.id}"' in client.get(manage).content.decode()

    response = client.post(f"{manage}search/{archive.id}/", {"contains": "sshd", "from": "", "to": "", "field": ""})
    assert response.status_code == 302
    search = finished(ArchiveSearch.objects.get(archive=archive))
    assert search.status == ArchiveSearch.Status.COMPLETED and search.matches > 0
    status = client.get(f"{manage}status/").json()
    assert f'id="view-search-{search.id}"' in status["searches_html"]

    page = client.get(f"{manage}searches/{search.id}/").content.decode()
    first = search_jobs.preview(search, limit=1)[0]
    assert f"{search.matches:,}</strong> matches" in page
    assert first["timestamp"] in page
    download = client.get(f"{manage}searches/{search.id}/download/")
    assert download["Content-Type"] == "application/x-ndjson"
    assert b"".join(download.streaming_content) == b"".join(search_jobs.result_blocks(search))

    outsider = make_user()  # staff, administers nothing
    client.force_login(outsider)
    for url in (f"{manage}searches/{search.id}/", f"{manage}searches/{search.id}/download/"):
        assert client.get(url).status_code == 404


def test_a_search_worker_paused_past_the_reaper_writes_nothing_when_it_wakes(
    failpoint_worker, admin, make_fractal, seed_rows, settings
):
    source = make_fractal()
    seed_rows(source, 40_000, days=4, seed=73)
    archive = archive_in_process(admin, source)
    worker = failpoint_worker("search.scanning#3:stop")
    search = search_jobs.request_search(admin, archive, RestoreOptions.parse(contains="sshd"), enqueue=False)
    search_archive_task.apply_async([str(search.id)], queue=worker.queue, task_id=str(search.id))
    wait_until(worker.is_stopped, 120, 0.05, "the worker to stop while searching")

    settings.STRIX_JOB_STALL_SECONDS = 5
    assert search_jobs.reap_stale_searches(timezone.now() + timedelta(seconds=6)) == [str(search.id)]
    search.refresh_from_db()
    assert search.status == ArchiveSearch.Status.FAILED and "worker stopped" in search.error
    failed_record = (search.status, search.error, search.finished_at, search.matches)

    worker.signal(signal.SIGCONT)
    wait_until(AsyncResult(str(search.id)).ready, 120, 0.2, "the continued worker to end its task")
    search.refresh_from_db()
    assert (search.status, search.error, search.finished_at, search.matches) == failed_record
    assert not get_store("archives").exists(search.result_file)
    assert "writing nothing more" in worker.log_path.read_text()


def test_an_archive_is_kept_while_a_search_reads_it_and_a_pending_search_goes_with_it(admin, make_fractal, seed_rows):
    source = make_fractal()
    seed_rows(source, 1_000, days=2, seed=74)
    archive = archive_in_process(admin, source)
    pending = search_jobs.request_search(admin, archive, RestoreOptions(), enqueue=False)
    running = search_jobs.request_search(admin, archive, RestoreOptions(), enqueue=False)
    ArchiveSearch.objects.filter(pk=running.pk).update(status=ArchiveSearch.Status.SEARCHING)
    with pytest.raises(ArchiveInUse, match="a search is reading archive"):
        services.delete_archive(admin, archive)
    ArchiveSearch.objects.filter(pk=running.pk).update(status=ArchiveSearch.Status.FAILED)
    services.delete_archive(admin, archive)
    assert search_jobs.run_search(pending.id) is None  # its worker finds nothing to do, and writes nothing
