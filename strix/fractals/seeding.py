"""Filling a fractal with generated demo rows, one process per core."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from datetime import datetime

from strix import logstore
from strix.fractals.demo import generate_rows

BATCH_ROWS = 50_000


def seed_fractal_rows(
    fractal_id: str,
    rows: int,
    days: float = 7,
    seed: int | None = None,
    on_progress: Callable[[int], None] = lambda done: None,
    now: datetime | None = None,
) -> int:
    """Insert ``rows`` generated rows over the ``days`` before ``now`` (default: the present);
    generating costs as much CPU as inserting, so both run per core."""
    batches = [
        (fractal_id, min(BATCH_ROWS, rows - offset), days, None if seed is None else seed + index, now)
        for index, offset in enumerate(range(0, rows, BATCH_ROWS))
    ]
    if not batches:
        return 0
    inserted = 0
    processes = min(os.cpu_count() or 1, len(batches))
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        for count in pool.imap_unordered(_insert_batch, batches):
            inserted += count
            on_progress(inserted)
    return inserted


def _insert_batch(spec) -> int:
    fractal_id, count, days, seed, now = spec
    return logstore.insert_rows(fractal_id, generate_rows(count, days=days, seed=seed, now=now))
