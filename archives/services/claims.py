"""Claiming a fractal for one archive or restore: a Redis lock, backed by a database row."""

from __future__ import annotations

from collections.abc import Callable

from django.db import IntegrityError, transaction

from archives.models import FractalOperation
from strix.fractals.models import Fractal
from workers import locks

# How long a claimed job may wait in the queue before its lock lapses (the database row still holds).
PENDING_LOCK_TTL = 24 * 3600


def claim_fractal(fractal: Fractal, create_job: Callable[[str], object], field: str):
    """Lock ``fractal`` and create the job (``create_job(lock_token)``) with its claim row, atomically.

    Raises :class:`~workers.locks.FractalBusy` when another operation holds the fractal.
    """
    token = locks.acquire_fractal_lock(str(fractal.id), fractal.name, ttl=PENDING_LOCK_TTL)
    try:
        with transaction.atomic():
            job = create_job(token)
            FractalOperation.objects.create(fractal=fractal, **{field: job})
    except IntegrityError:
        locks.release_fractal_lock(str(fractal.id), token)
        raise locks.FractalBusy(fractal.name) from None
    except BaseException:
        locks.release_fractal_lock(str(fractal.id), token)
        raise
    return job


def release_claim(fractal_id, token: str, **job) -> None:
    """Free the fractal after a job ended (or was reaped)."""
    FractalOperation.objects.filter(fractal_id=fractal_id, **job).delete()
    if token:
        locks.release_fractal_lock(str(fractal_id), token)
