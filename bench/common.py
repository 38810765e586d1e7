"""Shared set-up for benchmarks: Django against a throwaway ClickHouse database, timing, peak RSS."""

import os
import resource
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def setup_django(clickhouse_database: str | None = None) -> str:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "strix.settings")
    name = clickhouse_database or f"strix_bench_{uuid.uuid4().hex[:8]}"
    os.environ["STRIX_CLICKHOUSE_DATABASE"] = name
    import django

    django.setup()
    return name


@contextmanager
def timed(results: dict, key: str):
    started = time.perf_counter()
    yield
    results[key] = time.perf_counter() - started


def peak_rss_mb() -> float:
    """This process's peak RSS since it started (VmHWM; getrusage would include the pre-exec parent's)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
