"""Flat in the number of fractals: the schedule scan, a retention pass and the Manage tab at scale.

    .venv/bin/python bench/scale.py [--fractals 10000] [--retention-fractals 1000]

In a throwaway PostgreSQL database (and ClickHouse database):
- 10,000 fractals, half with a schedule, a third with retention, 5 archive records each;
  scan: deciding which scheduled archives are due (`due_fractals`), its time and its queries;
- retention: a pass over 1,000 fractals with rows on each of 30 days (10 rows a day), nothing yet
  archived so every old day is checked and kept; its time and its ClickHouse statements;
- manage: the Manage tab of a fractal with 1,000 archive records, and the Operations list, rendered
  by the Django test client: the slower of the two, and the queries of the Manage tab.
Ends with `scan_s=… retention_s=… manage_ms=… operations_ms=… queries=…`.
"""

import argparse
import logging
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

from common import ROOT

DATABASE = f"strix_bench_scale_{uuid.uuid4().hex[:6]}"
PG = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-qtAc"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fractals", type=int, default=10_000)
    parser.add_argument("--retention-fractals", type=int, default=1_000)
    args = parser.parse_args()
    subprocess.run([*PG, f"CREATE DATABASE {DATABASE}"], check=True)
    os.environ["DATABASE_URL"] = f"postgresql://postgres@127.0.0.1:5432/{DATABASE}"
    os.environ["STRIX_CLICKHOUSE_DATABASE"] = DATABASE
    os.environ["DJANGO_SETTINGS_MODULE"] = "strix.settings"
    os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "testserver,127.0.0.1,localhost")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    from strix import logstore

    try:
        call_command("migrate", verbosity=0)
        logstore.ensure_schema()
        figures = run(args)
    finally:
        from django.db import connections

        connections.close_all()
        logstore.drop_database(DATABASE)
        subprocess.run([*PG, f"DROP DATABASE IF EXISTS {DATABASE}"], check=True)
    print(
        f"fractals={args.fractals:,}: scan {figures['scan_s']:.2f}s in {figures['scan_queries']} queries; "
        f"retention over {args.retention_fractals:,} fractals × 30 days {figures['retention_s']:.1f}s "
        f"({figures['retention_statements']:,} ClickHouse statements), "
        f"the next pass {figures['retention_again_s']:.1f}s "
        f"({figures['retention_again_statements']:,}); Manage tab with 1,000 archives "
        f"{figures['manage_ms']:.0f} ms in {figures['manage_queries']} queries; "
        f"Operations {figures['operations_ms']:.0f} ms"
    )
    print(
        f"scan_s={figures['scan_s']:.2f} retention_s={figures['retention_s']:.1f} "
        f"retention_again_s={figures['retention_again_s']:.1f} manage_ms={figures['manage_ms']:.0f} "
        f"operations_ms={figures['operations_ms']:.0f} queries={figures['scan_queries']}"
    )


def run(args) -> dict:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    from archives.models import Archive
    from archives.services import retention
    from archives.services.schedule import due_fractals
    from strix import logstore
    from strix.fractals.models import ArchiveSchedule, Fractal

    now = datetime.now(UTC)
    schedules = [ArchiveSchedule.DAILY, ArchiveSchedule.WEEKLY, ArchiveSchedule.MONTHLY]
    print(f"creating {args.fractals:,} fractals and {5 * args.fractals:,} archive records …", flush=True)
    fractals = Fractal.objects.bulk_create(
        Fractal(
            name=f"scale-{i:05d}",
            archive_schedule=schedules[i % 3] if i % 2 == 0 else ArchiveSchedule.NEVER,
            retention_days=7 if i % 3 == 0 else None,
        )
        for i in range(args.fractals)
    )
    Archive.objects.bulk_create(
        Archive(
            fractal=f,
            status=Archive.Status.COMPLETED,
            kind=Archive.Kind.SCHEDULED,
            row_count=100,
            size_bytes=10_000,
            file_name=f"{f.id}/{uuid.uuid4()}.strix-archive",
        )  # fmt: skip
        for f in fractals
        for _ in range(5)
    )
    # Made in earlier periods: every scheduled fractal is due, the scan's worst case.
    Archive.objects.update(created_at=now - timedelta(days=40), finished_at=now - timedelta(days=40))
    figures = {}
    with CaptureQueriesContext(connection) as queries:
        started = time.perf_counter()
        due = due_fractals(now)
        figures["scan_s"] = time.perf_counter() - started
    figures["scan_queries"] = len(queries)
    print(f"scan: {len(due):,} due, {figures['scan_s']:.2f}s, {len(queries)} queries", flush=True)

    # Retention: 1,000 fractals with retention, rows on each of 30 days.
    with_retention = Fractal.objects.exclude(retention_days=None).order_by("name")[: args.retention_fractals]
    Fractal.objects.exclude(pk__in=[f.pk for f in with_retention]).update(retention_days=None)
    print(f"seeding {len(with_retention):,} fractals × 30 days × 10 rows …", flush=True)
    from strix.logstore.schema import LOG_COLUMNS, LOGS_TABLE

    insert = f"INSERT INTO {logstore.database()}.{LOGS_TABLE} ({', '.join(LOG_COLUMNS)}) VALUES"
    rows = []  # one INSERT for all: a thousand small ones would make a thousand parts
    for fractal in with_retention:
        for day in range(30):
            for n in range(10):
                at = now - timedelta(days=day, minutes=n)
                rows.append((str(fractal.id), at, str(uuid.uuid4()), f"row {n}", "{}", at))
    logstore.execute(insert, rows)
    logging.getLogger("archives.services.retention").setLevel(logging.ERROR)  # 500 "kept days" warnings
    rows_before = logstore.execute(f"SELECT count() FROM {logstore.database()}.{LOGS_TABLE}")[0][0]
    statements = _count_statements()
    started = time.perf_counter()
    results = retention.enforce_all(now)
    figures["retention_s"] = time.perf_counter() - started
    figures["retention_statements"] = statements()
    # The figure counts only if the pass did its job: exactly the decided days' rows are gone.
    deleted_days = sum(len(result.deleted_days) for result in results)
    rows_after = logstore.execute(f"SELECT count() FROM {logstore.database()}.{LOGS_TABLE}")[0][0]
    assert len(results) == len(with_retention) and deleted_days, (len(results), deleted_days)
    assert rows_before - rows_after == deleted_days * 10, (rows_before, rows_after, deleted_days)
    print(f"retention: {figures['retention_s']:.1f}s, {figures['retention_statements']:,} statements", flush=True)
    # The next hourly pass: nothing new to delete, the kept days are not read again (only counted).
    statements = _count_statements()
    started = time.perf_counter()
    retention.enforce_all(now)
    figures["retention_again_s"] = time.perf_counter() - started
    figures["retention_again_statements"] = statements()

    # The Manage tab of a fractal with 1,000 archive records, and the Operations list.
    busy = fractals[0]
    Archive.objects.bulk_create(
        Archive(fractal=busy, status=Archive.Status.COMPLETED, row_count=100, size_bytes=10_000) for _ in range(995)
    )
    admin = get_user_model().objects.create_superuser("scale-admin", "a@example.com", "pw")
    client = Client()
    client.force_login(admin)
    client.get(f"/admin/fractals/fractal/{busy.pk}/manage/")  # warm (templates compiled)
    with CaptureQueriesContext(connection) as queries:
        started = time.perf_counter()
        response = client.get(f"/admin/fractals/fractal/{busy.pk}/manage/")
        figures["manage_ms"] = (time.perf_counter() - started) * 1000
    assert response.status_code == 200, response.status_code
    figures["manage_queries"] = len(queries)
    operations = reverse("admin:archives_operations")
    client.get(operations)
    started = time.perf_counter()
    response = client.get(operations)
    figures["operations_ms"] = (time.perf_counter() - started) * 1000
    assert response.status_code == 200, response.status_code
    return figures


def _count_statements():
    """Count the ClickHouse statements sent from now on (at the driver: every statement passes there)."""
    from clickhouse_driver import Client

    count = [0]
    original = Client.execute

    def counting(self, *args, **kwargs):
        count[0] += 1
        return original(self, *args, **kwargs)

    Client.execute = counting
    return lambda: count[0]


if __name__ == "__main__":
    main()
