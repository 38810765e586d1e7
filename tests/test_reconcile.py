"""Archive records and stored files brought back into agreement after a PostgreSQL restore (real
PostgreSQL, ClickHouse and disk storage)."""

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from archives import services
from archives.models import Archive, RestoreJob
from archives.services.errors import NotRestorable
from backups.services import backup_source, backup_store, restore_backup
from strix import logstore
from strix.fractals.models import Fractal
from strix.storage import get_store
from tests.jobs import archive_in_process
from tests.test_backups import make_backup, own_backup_directory  # noqa: F401 (autouse fixture)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def own_archive_store(request, settings, tmp_path):
    """Only this test's files: reconcile looks at everything in the store."""
    from strix.envconfig import storage_backends

    request.getfixturevalue("own_backup_directory")  # first, so that it cannot undo what follows

    settings.STORAGES = {**settings.STORAGES, **storage_backends({}, tmp_path / "archives", tmp_path / "backups")}
    settings.STRIX_BACKUP_DIR = tmp_path / "backups"


def reconcile(*args) -> tuple[int, list[str]]:
    out = io.StringIO()
    try:
        call_command("archives", "reconcile", *args, stdout=out)
        code = 0
    except CommandError:
        code = 1
    return code, out.getvalue().splitlines()


def test_after_restoring_an_older_database_reconcile_reports_then_repairs_exactly_the_drift(
    admin, make_fractal, seed_rows
):
    fractal = make_fractal()
    seed_rows(fractal, 3_000, days=3, seed=81)
    kept = archive_in_process(admin, fractal)
    deleted_since = archive_in_process(admin, fractal)
    backup = make_backup()
    made_since = [archive_in_process(admin, fractal), archive_in_process(admin, fractal)]
    services.delete_archive(admin, deleted_since)
    gone = make_fractal()  # a fractal the older database never knew
    seed_rows(gone, 500, days=1, seed=82)
    orphan = archive_in_process(admin, gone)

    label, opener = backup_source(backup_store(), backup)
    restore_backup(opener, label, lambda info: True, lambda message: None)  # without the command's reconcile
    connection.close()
    assert set(Archive.objects.values_list("id", flat=True)) == {kept.id, deleted_since.id}

    code, lines = reconcile("--dry-run")
    assert code == 1
    assert sorted(lines) == sorted(
        [
            f"missing: archive {deleted_since.id} of {fractal.name}: its file {deleted_since.file_name} is gone",
            *(f"unrecorded: {a.file_name}: archive {a.id} of fractal {fractal.id}" for a in made_since),
            f"unrecorded, cannot be registered: {orphan.file_name} (fractal {gone.name} ({gone.id}) no longer exists)",
        ]
    )
    assert Archive.objects.get(pk=deleted_since.pk).status == Archive.Status.COMPLETED  # dry run: nothing changed

    code, lines = reconcile()
    assert (
        code == 0
        and lines[-1]
        == "Reconciled: 1 marked Missing, 0 found again, 2 re-registered, 1 reported (left in storage, see above)."
    )
    missing = Archive.objects.get(pk=deleted_since.pk)
    assert missing.status == Archive.Status.MISSING
    with pytest.raises(NotRestorable, match="missing"):
        services.request_restore(admin, missing, target=make_fractal(), enqueue=False)
    for original in made_since:
        again = Archive.objects.get(pk=original.pk)
        assert again.status == Archive.Status.COMPLETED and again.fractal_id == fractal.id
        assert (again.row_count, again.time_start, again.time_end, again.kind) == (
            original.row_count, original.time_start, original.time_end, original.kind,
        )  # fmt: skip
        assert again.day_offsets == original.day_offsets and again.size_bytes == original.size_bytes
    assert get_store("archives").exists(orphan.file_name)  # reported, never deleted

    # A re-registered archive restores.
    target = make_fractal()
    job = services.request_restore(admin, Archive.objects.get(pk=made_since[0].pk), target=target, enqueue=False)
    services.run_restore(job.id)
    job.refresh_from_db()
    assert job.status == RestoreJob.Status.COMPLETED, job.error
    assert logstore.fractal_checksum(str(target.id)) == logstore.fractal_checksum(str(fractal.id))

    code, lines = reconcile("--dry-run")  # only the orphan is left, and stays reported
    assert code == 1 and len(lines) == 1 and orphan.file_name in lines[0]
    assert not Fractal.objects.filter(pk=gone.pk).exists()
