import time

from django.core.management.base import BaseCommand, CommandError

from strix import logstore
from strix.errors import OperatorError
from strix.fractals.lookup import find_fractal
from strix.fractals.seeding import seed_fractal_rows
from strix.progress import ProgressBar


class Command(BaseCommand):
    help = "Insert realistic demo log rows (syslog, JSON events, Windows events) into a fractal."

    def add_arguments(self, parser):
        parser.add_argument("fractal", help="fractal name or id")
        parser.add_argument("--rows", type=int, default=100_000, help="how many rows (default 100000)")
        parser.add_argument("--days", type=float, default=7, help="spread timestamps over this many days (default 7)")
        parser.add_argument("--seed", type=int, default=None, help="random seed, for repeatable data")

    def handle(self, *args, fractal, rows, days, seed, **options):
        if rows < 0 or days <= 0:
            raise CommandError("--rows must be ≥ 0 and --days > 0.")
        progress = ProgressBar(rows, "Seeding", stream=self.stderr._out)
        try:
            target = find_fractal(fractal)
            logstore.ensure_schema()
            started = time.monotonic()
            inserted = seed_fractal_rows(str(target.id), rows, days, seed, on_progress=progress.update)
        except OperatorError as e:
            raise CommandError(str(e)) from None
        progress.finish()
        elapsed = max(time.monotonic() - started, 1e-9)
        self.stdout.write(
            f"Inserted {inserted:,} rows into fractal {target.name} in {elapsed:.1f}s "
            f"({inserted / elapsed:,.0f} rows/s)."
        )
