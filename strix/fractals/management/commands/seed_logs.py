import multiprocessing
import os
import time

from django.core.management.base import BaseCommand, CommandError

from strix import logstore
from strix.fractals.demo import generate_rows
from strix.fractals.lookup import FractalNotFound, find_fractal
from strix.progress import ProgressBar

BATCH_ROWS = 50_000


class Command(BaseCommand):
    help = "Insert realistic demo log rows (syslog, JSON events, Windows events) into a fractal."

    def add_arguments(self, parser):
        parser.add_argument("fractal", help="fractal name or id")
        parser.add_argument("--rows", type=int, default=100_000, help="how many rows (default 100000)")
        parser.add_argument(
            "--days", type=float, default=7, help="spread timestamps over this many days (default 7)"
        )
        parser.add_argument("--seed", type=int, default=None, help="random seed, for repeatable data")

    def handle(self, *args, fractal, rows, days, seed, **options):
        if rows < 0 or days <= 0:
            raise CommandError("--rows must be ≥ 0 and --days > 0.")
        try:
            target = find_fractal(fractal)
            logstore.ensure_schema()
            started = time.monotonic()
            inserted = self._insert(str(target.id), rows, days, seed)
        except (FractalNotFound, logstore.LogStoreError) as e:
            raise CommandError(str(e)) from None
        elapsed = max(time.monotonic() - started, 1e-9)
        self.stdout.write(
            f"Inserted {inserted:,} rows into fractal {target.name} in {elapsed:.1f}s "
            f"({inserted / elapsed:,.0f} rows/s)."
        )

    def _insert(self, fractal_id: str, rows: int, days: float, seed) -> int:
        progress = ProgressBar(rows, "Seeding", stream=self.stderr._out)
        batches = [
            (fractal_id, min(BATCH_ROWS, rows - offset), days, None if seed is None else seed + index)
            for index, offset in enumerate(range(0, rows, BATCH_ROWS))
        ]
        inserted = 0
        # Generating rows is as costly as inserting them: one process per core does both.
        processes = min(os.cpu_count() or 1, len(batches)) or 1
        with multiprocessing.get_context("fork").Pool(processes) as pool:
            for count in pool.imap_unordered(_insert_batch, batches):
                inserted += count
                progress.update(inserted)
        progress.finish()
        return inserted


def _insert_batch(spec) -> int:
    fractal_id, count, days, seed = spec
    return logstore.insert_rows(fractal_id, generate_rows(count, days=days, seed=seed))
