"""A restore reads only the file its record describes, and a bad file fails fast, naming what is wrong.

Each file here is made with the real key, so the container's own authentication passes: what stops
the restore is the comparison with the record, or ClickHouse's refusal of a record (named by line).
"""

import json
import time

import pytest
from django.conf import settings

from archives import services
from archives.models import FractalClaim, RestoreJob
from archives.services.promote import STAGING_PREFIX
from strix import logstore
from strix.crypto.container import ContainerWriter
from strix.crypto.keys import Keyring
from strix.crypto.reader import ContainerReader
from strix.storage import get_store
from tests.celery_worker import wait_for_job, wait_until
from tests.jobs import archive_in_process

pytestmark = pytest.mark.django_db(transaction=True)


def stored_path(archive):
    path = get_store("archives").base / archive.file_name
    path.chmod(0o600)
    return path


def forge(archive, plaintext: bytes, kind="archive", **metadata):
    """Write a validly encrypted file in ``archive``'s place, with its header unless told otherwise."""
    header = {"archive_id": str(archive.id), "fractal_id": str(archive.fractal_id), **metadata}
    with open(stored_path(archive), "wb") as sink:
        writer = ContainerWriter(sink, Keyring.from_settings(), kind, header, app_version=settings.APP_VERSION)
        if kind == "archive":  # one segment per day, as archives are written
            for line in plaintext.splitlines(keepends=True):
                day = line[14:24].decode()
                if day not in writer._labels:
                    writer.begin_segment(day)
                writer.write(line)
        else:
            writer.write(plaintext)
        trailer = writer.close()
    # Each day's place as this file has it: these tests are about the content, not a moved day (whose
    # own check, record against file, would otherwise refuse the file first).
    archive.day_offsets = {s.label: [s.chunk, s.offset] for s in trailer.segments} or archive.day_offsets
    archive.save(update_fields=["day_offsets"])


def restore_fails(admin, archive, target, enqueue=False):
    before = logstore.fractal_checksum(str(target.id))
    job = services.request_restore(admin, archive, target=target, enqueue=enqueue)
    if enqueue:
        job = wait_for_job(job, timeout=60)
    else:
        services.run_restore(job.id)
        job.refresh_from_db()
    assert job.status == RestoreJob.Status.FAILED
    assert logstore.fractal_checksum(str(target.id)) == before
    # The failure is recorded first, the staging table dropped after it (restore.run_restore).
    own = f"{STAGING_PREFIX}{job.id.hex}_"
    wait_until(lambda: logstore.tables_with_prefix(own) == [], 30, 0.1, "the staging table to go")
    assert not FractalClaim.objects.exists()
    return job


def test_another_fractals_archive_file_in_a_records_place_is_refused_naming_both_ids(admin, make_fractal, seed_rows):
    a, b, target = make_fractal(), make_fractal(), make_fractal()
    seed_rows(a, 3_000, seed=31)
    seed_rows(b, 2_000, seed=32)
    seed_rows(target, 500, seed=33)
    archive_a, archive_b = archive_in_process(admin, a), archive_in_process(admin, b)
    stored_path(archive_a).write_bytes(stored_path(archive_b).read_bytes())

    job = restore_fails(admin, archive_a, target)
    assert f"its archive id is {archive_b.id}, the record's is {archive_a.id}" in job.error


def test_a_backup_file_in_an_archives_place_is_refused_naming_its_kind(admin, make_fractal, seed_rows):
    source, target = make_fractal(), make_fractal()
    seed_rows(source, 1_000, seed=34)
    archive = archive_in_process(admin, source)
    forge(archive, b"PGDMP\x01\x0e\x00" * 1000, kind="backup")

    job = restore_fails(admin, archive, target)
    assert "its kind is backup, the record's is archive" in job.error


def test_a_file_whose_trailer_holds_other_rows_than_the_record_is_refused_naming_both_counts(
    admin, make_fractal, seed_rows
):
    source, target = make_fractal(), make_fractal()
    seed_rows(source, 1_000, seed=35)
    seed_rows(target, 100, seed=36)
    archive = archive_in_process(admin, source)
    with get_store("archives").open_read(archive.file_name) as stream:
        lines = b"".join(ContainerReader(stream, Keyring.from_settings())).splitlines(keepends=True)
    forge(archive, b"".join(lines[:700]))

    job = restore_fails(admin, archive, target)
    assert f"holds 700 rows but the record of archive {archive.id} says 1000" in job.error


def test_a_malformed_record_fails_the_restore_within_seconds_naming_its_line(
    celery_worker, admin, make_fractal, seed_rows
):
    source, target = make_fractal(), make_fractal()
    seed_rows(source, 200_000, days=30, seed=37)
    seed_rows(target, 1_000, seed=38)
    archive = archive_in_process(admin, source)
    with get_store("archives").open_read(archive.file_name) as stream:
        lines = b"".join(ContainerReader(stream, Keyring.from_settings())).splitlines(keepends=True)
    bad_line = 123_457
    day = lines[bad_line - 2][:24]  # '{"timestamp":"YYYY-MM-DD': filed under its neighbours' day
    lines[bad_line - 1] = day + b' 00:00:00","raw_log":"cut off\n'
    forge(archive, b"".join(lines))
    json.loads(lines[bad_line])  # its neighbours are intact

    started = time.monotonic()
    job = restore_fails(admin, archive, target, enqueue=True)
    assert time.monotonic() - started < 30
    assert f"line {bad_line}" in job.error
