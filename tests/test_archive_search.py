"""Searching an archive's file directly (archives search, search jobs): the matches are exactly the
rows whose raw log holds the text, the file is authenticated as it is read, and a search that does not
count rows one by one still reports the rows it read, by the file's authenticated index."""

import json
import threading
from datetime import timedelta

import pytest

from archives.services.options import RestoreOptions
from archives.services.search import search_archive
from strix.crypto.errors import ChunkAuthenticationError, TruncatedError
from strix.storage import get_store
from tests.jobs import archive_in_process
from tests.stored import flip_byte

pytestmark = pytest.mark.django_db(transaction=True)


def archived_lines(archive) -> list[bytes]:
    from archives.services.stored_file import open_archive

    with open_archive(archive) as stored:  # the audited reader: rows counted and checked one by one
        return b"".join(stored.blocks()).splitlines(keepends=True)


def test_a_search_finds_exactly_the_rows_whose_raw_log_holds_the_text(admin, make_fractal, seed_rows, storage_backend):
    """On disk and on the S3 server (the index is read first through a ranged read, then the data)."""
    fractal = make_fractal()
    seed_rows(fractal, 30_000, days=5, seed=81)
    archive = archive_in_process(admin, fractal)
    lines = archived_lines(archive)
    for needle in ("sshd", "Accepted", "EventID=4625", "a", "no such text"):
        expected = [line for line in lines if needle in json.loads(line)["raw_log"]]
        found = list(search_archive(archive, RestoreOptions.parse(contains=needle)))
        assert found == expected, needle  # in file order, each with its newline, nothing else
    assert 0 < len(list(search_archive(archive, RestoreOptions.parse(contains="sshd")))) < len(lines)


def test_a_search_reports_the_rows_it_read_by_the_index(admin, make_fractal, seed_rows, storage_backend):
    fractal = make_fractal()
    seed_rows(fractal, 20_000, days=4, seed=82)
    archive = archive_in_process(admin, fractal)
    seen: list[int] = []
    assert list(search_archive(archive, RestoreOptions.parse(contains="sshd"), on_progress=seen.append))
    assert seen == sorted(seen) and seen[-1] == archive.row_count == 20_000
    assert len(set(seen)) > 2  # it moved while the file was read, not only at the end

    day = min(archive.day_rows)
    start = archive.time_start.replace(hour=0, minute=0, second=0, microsecond=0)
    one_day = RestoreOptions.parse(start, start + timedelta(days=1), contains="sshd")
    seen.clear()
    found = list(search_archive(archive, one_day, on_progress=seen.append))
    assert found and all(line.startswith(b'{"timestamp":"' + day.encode()) for line in found)
    assert seen[-1] == archive.day_rows[day][0]


def test_a_search_of_a_damaged_file_fails_naming_the_damage(admin, make_fractal, seed_rows):
    fractal = make_fractal()
    seed_rows(fractal, 20_000, days=4, seed=83)
    archive = archive_in_process(admin, fractal)
    days = sorted(archive.day_rows)
    flip_byte(archive, days[2])
    found = []
    with pytest.raises(ChunkAuthenticationError):
        for line in search_archive(archive, RestoreOptions.parse(contains="sshd")):
            found.append(line)
    # Only lines of the days before the damaged one came out: every chunk is authenticated before use.
    assert found and all(line[14:24].decode() < days[2] for line in found)

    path = get_store("archives").base / archive.file_name
    path.write_bytes(path.read_bytes()[:-40])  # the end of the file (its index) is gone
    with pytest.raises(TruncatedError):
        next(search_archive(archive, RestoreOptions.parse(contains="sshd")))  # before any line


def test_a_search_stopped_by_its_limit_leaves_no_thread_reading(admin, make_fractal, seed_rows):
    fractal = make_fractal()
    seed_rows(fractal, 20_000, days=4, seed=84)
    archive = archive_in_process(admin, fractal)
    before = threading.active_count()
    found = list(search_archive(archive, RestoreOptions.parse(contains="sshd"), limit=3))
    assert len(found) == 3
    assert threading.active_count() == before  # the reading thread ended with the search
