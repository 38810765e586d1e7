"""Searching an archive without restoring it, beside ClickHouse answering the same query on the source.

    .venv/bin/python bench/search.py --rows 1000000

ours:   the archive search service (decrypt, decompress, parse every record, match) in a child process
        whose peak RSS is its own, counting matches;
native: clickhouse-client counting the same predicate on the live source rows (no decryption at all:
        the figure an archive search competes with when the rows are still in ClickHouse).
grep:   the native archive pipeline's file (clickhouse-client … FORMAT JSONEachRow | zstd -3 |
        openssl enc -aes-256-ctr) searched as an operator would without Strix:
        openssl enc -d … | zstd -d | grep -c NEEDLE (it counts lines holding the text anywhere, ours
        only those whose raw log holds it). search_vs_grep = grep's time / ours.
day:    the same search over one day of the 30 (a seekable archive reads only that day's chunks):
        its time and the share of the file it read.
Needs a migrated PostgreSQL database (make demo or manage.py migrate): records go there.
"""

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from common import peak_rss_mb, setup_django

NEEDLE = "sshd"


def child(archive_id: str) -> None:
    from archives.models import Archive
    from archives.services.options import RestoreOptions
    from archives.services.search import search_archive

    started = time.perf_counter()
    found = sum(1 for _ in search_archive(Archive.objects.get(pk=archive_id), RestoreOptions.parse(contains=NEEDLE)))
    print(time.perf_counter() - started, round(peak_rss_mb()), found)


def one_day(archive) -> tuple[float, float]:
    """Seconds to search the middle day of the archive, and the share of its file that was read."""
    from datetime import timedelta

    from archives.services.options import RestoreOptions
    from archives.services.search import search_reading
    from archives.services.stored_file import open_archive

    archive.refresh_from_db()
    day = archive.time_start.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=15)
    options = RestoreOptions.parse(day, day + timedelta(days=1), contains=NEEDLE)
    started = time.perf_counter()
    with open_archive(archive, audit_rows=False) as stored:  # as search_archive opens it
        found = sum(1 for _ in search_reading(stored, options))
    seconds = time.perf_counter() - started
    assert found > 0
    archive.refresh_from_db()
    return seconds, stored.bytes_read / archive.size_bytes


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each side; the best is kept (default 3)")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        setup_django(args.child[0])
        child(args.child[1])
        return

    database = setup_django()
    from archives import services
    from strix import logstore
    from strix.fractals.models import Fractal
    from strix.fractals.seeding import seed_fractal_rows

    logstore.ensure_schema()
    source = Fractal.objects.create(name=f"bench-search-{database}")
    try:
        print(f"seeding {args.rows:,} rows over 30 days …", flush=True)
        seed_fractal_rows(str(source.id), args.rows, days=30, seed=13)
        archive = services.request_archive(None, source, enqueue=False)
        services.run_archive(archive.id)
        where = f"fractal_id = '{source.id}' AND position(raw_log, '{NEEDLE}') > 0"
        query = f"SELECT count() FROM {database}.logs WHERE {where}"
        ours, native, grep = [], [], []
        env = {**os.environ, "STRIX_CLICKHOUSE_DATABASE": database}
        with native_file(database, str(source.id)) as sealed:
            for _ in range(args.repeat):  # interleaved, so that every side sees the same machine
                result = subprocess.run(
                    [sys.executable, __file__, "--child", database, str(archive.id)],
                    capture_output=True, text=True, env=env, check=True,
                )  # fmt: skip
                seconds, rss, found = result.stdout.split()
                ours.append((float(seconds), int(rss), int(found)))
                started = time.perf_counter()
                answer = subprocess.run(["clickhouse-client", "-q", query], capture_output=True, text=True, check=True)
                native.append((time.perf_counter() - started, int(answer.stdout)))
                grep.append(sealed.grep())
        assert {found for _, _, found in ours} == {count for _, count in native}, "the counts differ"
        grep = min(grep)
        day_seconds, day_fraction = one_day(archive)
    finally:
        from archives.models import Archive

        for made in Archive.objects.filter(fractal=source):
            services.delete_archive(None, made)
        source.delete()
        logstore.drop_database(database)

    best, native_best = min(t for t, _, _ in ours), min(t for t, _ in native)
    rss = max(r for _, r, _ in ours)
    print(f"rows={args.rows:,} matches={ours[0][2]:,}  best of {args.repeat} interleaved runs")
    print(f"ours (archive search): {best:.2f}s {args.rows / best:,.0f} rows/s, peak RSS {rss} MB")
    print(f"clickhouse-client on the live rows: {native_best:.2f}s")
    print(f"openssl -d | zstd -d | grep -c on the native pipeline's file: {grep[0]:.2f}s ({grep[1]:,} lines)")
    print(f"one day of 30: {day_seconds:.2f}s, read {day_fraction:.1%} of the archive file")
    print(
        f"search_rows_per_s={args.rows / best:.0f} search_vs_native={native_best / best:.2f} "
        f"search_vs_grep={grep[0] / best:.2f} peak_rss_mb={rss} day_search_s={day_seconds:.2f} "
        f"day_read_fraction={day_fraction:.3f}"
    )


class NativeFile:
    """The native archive pipeline's file of the fractal, and the operator's way to search it."""

    def __init__(self, path: str, key: str, iv: str):
        self.path, self.key, self.iv = path, key, iv

    def grep(self) -> tuple[float, int]:
        """(seconds, lines counted) of decrypt | decompress | grep -c on the file."""
        started = time.perf_counter()
        counted = subprocess.run(
            f"openssl enc -d -aes-256-ctr -K {self.key} -iv {self.iv} < {self.path} | zstd -dq | grep -c {NEEDLE}",
            shell=True, capture_output=True, text=True, executable="/bin/bash",
        )  # fmt: skip
        return time.perf_counter() - started, int(counted.stdout)


@contextmanager
def native_file(database: str, fractal_id: str) -> Iterator[NativeFile]:
    """clickhouse-client … FORMAT JSONEachRow | zstd -3 | openssl enc, to a temporary file."""
    import tempfile

    from strix import logstore

    key, iv = os.urandom(32).hex(), os.urandom(16).hex()
    columns = ", ".join(logstore.RECORD_COLUMNS)
    select = (
        f"SELECT {columns} FROM {database}.logs WHERE fractal_id = '{fractal_id}' ORDER BY timestamp FORMAT JSONEachRow"
    )
    with tempfile.NamedTemporaryFile(suffix=".zst.enc") as sealed:
        subprocess.run(
            f'clickhouse-client -q "{select}" | zstd -3 -T2 -q | openssl enc -aes-256-ctr -K {key} -iv {iv} '
            f"> {sealed.name}",
            shell=True, check=True, executable="/bin/bash",
        )  # fmt: skip
        yield NativeFile(sealed.name, key, iv)


if __name__ == "__main__":
    main()
