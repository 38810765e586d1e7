"""Claiming a fractal for one archive or restore: a Redis lock, backed by a database row."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager

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


@contextmanager
def maintenance_claim(fractal: Fractal, ttl: float = 3600):
    """Hold ``fractal`` for work without a job record (retention): no archive or restore meanwhile.

    A claim left by a dead worker is removed by the reaper once its lock has lapsed.
    """
    token = locks.acquire_fractal_lock(str(fractal.id), fractal.name, ttl=ttl)
    try:
        try:
            FractalOperation.objects.create(fractal=fractal)
        except IntegrityError:
            raise locks.FractalBusy(fractal.name) from None
        try:
            yield
        finally:
            FractalOperation.objects.filter(fractal=fractal, archive=None, restore=None).delete()
    finally:
        locks.release_fractal_lock(str(fractal.id), token)


def release_claim(fractal_id, token: str, **job) -> None:
    """Free the fractal after a job ended (or was reaped)."""
    FractalOperation.objects.filter(fractal_id=fractal_id, **job).delete()
    if token:
        locks.release_fractal_lock(str(fractal_id), token)
