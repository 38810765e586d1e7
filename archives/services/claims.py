"""Claiming a fractal for one archive, restore or retention run, and fencing out stale workers.

A claim is a row of FractalClaim (unique per fractal, so a lost Redis cannot let two run) plus a
Redis lock kept alive by the worker's heartbeat (the reaper's cue that a worker is gone). Every claim
carries a *fence*: a number from a PostgreSQL sequence that only grows. When the reaper takes a job
over, it gives the claim a new fence; from then on every write of the old worker is refused:

- its job-record writes are ``UPDATE … WHERE fence = old`` and change nothing (:func:`write_job`);
- before any other write (ClickHouse, storage) it calls :func:`require`, which raises :class:`ClaimLost`;
- a ClickHouse DELETE it sends after that check, having paused in between, is fenced in ClickHouse
  itself (``strix.logstore.fences``), and the staging table it would attach from has been renamed.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

from django.db import IntegrityError, connection, transaction

from archives.models import FractalClaim
from strix import locks, logstore
from strix.fractals.models import Fractal

# How long a claimed job may wait in the queue before its lock lapses (the database row still holds).
PENDING_LOCK_TTL = 24 * 3600


class ClaimLost(Exception):
    """This worker no longer holds the fractal: its job was taken over. It must write nothing more."""


@dataclass(frozen=True)
class Claim:
    fractal_id: str
    fence: int

    @classmethod
    def of(cls, job) -> Claim:
        return cls(str(job.fractal_id if hasattr(job, "fractal_id") else job.target_id), job.fence)


def next_fence() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT nextval('archives_claim_fence')")
        return cursor.fetchone()[0]


def claim_fractal(fractal: Fractal, create_job: Callable[[str, int], object], field: str):
    """Lock ``fractal`` and create the job (``create_job(lock_token, fence)``) with its claim row, atomically.

    Raises :class:`~workers.locks.FractalBusy` when another operation holds the fractal.
    """
    token = locks.acquire_fractal_lock(str(fractal.id), fractal.name, ttl=PENDING_LOCK_TTL)
    try:
        with transaction.atomic():
            fence = next_fence()
            job = create_job(token, fence)
            FractalClaim.objects.create(fractal=fractal, fence=fence, **{field: job})
    except IntegrityError:
        locks.release_fractal_lock(str(fractal.id), token)
        raise locks.FractalBusy(fractal.name) from None
    except BaseException:
        locks.release_fractal_lock(str(fractal.id), token)
        raise
    return job


def holds(claim: Claim) -> bool:
    return FractalClaim.objects.filter(fractal_id=claim.fractal_id, fence=claim.fence).exists()


def lost(claims: list[Claim]) -> list[Claim]:
    """Those of ``claims`` taken over meanwhile, asked in one query (a retention batch holds many)."""
    held = FractalClaim.objects.filter(fractal_id__in=[claim.fractal_id for claim in claims])
    current = {Claim(str(fractal_id), fence) for fractal_id, fence in held.values_list("fractal_id", "fence")}
    return [claim for claim in claims if claim not in current]


def require(claim: Claim) -> None:
    """Prove, in PostgreSQL, that ``claim`` still holds its fractal; raise :class:`ClaimLost` if not."""
    if not holds(claim):
        raise ClaimLost(f"the claim on fractal {claim.fractal_id} (fence {claim.fence}) was taken over")


def write_job(job, claim: Claim, **fields) -> None:
    """Update ``job``'s record only while ``claim`` still owns it; raises :class:`ClaimLost` otherwise.

    One ``UPDATE … WHERE fence = claim.fence``: a takeover changes the record's fence in the same
    transaction as the claim's, so PostgreSQL re-checks the condition against the new row version.
    """
    if not type(job).objects.filter(pk=job.pk, fence=claim.fence).update(**fields):
        raise ClaimLost(f"{type(job).__name__} {job.pk} was taken over (fence {claim.fence}); it was not updated")
    for name, value in fields.items():
        setattr(job, name, value)


def take_over(job) -> Claim | None:
    """Give the job's claim a new fence, for the reaper; None if the job moved on meanwhile.

    The new fence is recorded in ClickHouse before anything else happens, so that from this moment a
    DELETE the old worker may still send matches no row.
    """
    old = Claim.of(job)
    with transaction.atomic():
        fence = next_fence()
        moved = FractalClaim.objects.filter(fractal_id=old.fractal_id, fence=old.fence).update(fence=fence)
        if not type(job).objects.filter(pk=job.pk, fence=old.fence).update(fence=fence) or not moved:
            transaction.set_rollback(True)
            return None
    job.fence = fence
    claim = Claim(old.fractal_id, fence)
    logstore.record_fence(claim.fractal_id, fence)
    return claim


def take_over_claim(claim: Claim) -> Claim | None:
    """For the reaper: a new fence for a claim that has no running job (a stopped retention run)."""
    fence = next_fence()
    if not FractalClaim.objects.filter(fractal_id=claim.fractal_id, fence=claim.fence).update(fence=fence):
        return None
    logstore.record_fence(claim.fractal_id, fence)
    return Claim(claim.fractal_id, fence)


@contextmanager
def maintenance_claim(fractal: Fractal, ttl: float = 3600):
    """Hold ``fractal`` for work without a job record (retention); yields its :class:`Claim`.

    A claim left by a dead worker is removed by the reaper once its lock has lapsed.
    """
    with maintenance_claims([fractal], ttl) as (claims, busy):
        if busy:
            raise locks.FractalBusy(fractal.name)
        yield claims[str(fractal.id)]


@contextmanager
def maintenance_claims(fractals: list[Fractal], ttl: float = 3600):
    """Hold many fractals at once (a retention batch); yields their claims by fractal id and the
    fractals left out because another operation holds them. The fences reach ClickHouse in one insert."""
    with ExitStack() as held:
        claims: dict[str, Claim] = {}
        busy: list[Fractal] = []
        for fractal in fractals:
            try:
                claims[str(fractal.id)] = held.enter_context(_claimed(fractal, ttl))
            except locks.FractalBusy:
                busy.append(fractal)
        if claims:
            logstore.record_fences({fractal_id: claim.fence for fractal_id, claim in claims.items()})
        yield claims, busy


@contextmanager
def _claimed(fractal: Fractal, ttl: float):
    """The fractal's lock and claim record (its fence is recorded in ClickHouse by the caller)."""
    token = locks.acquire_fractal_lock(str(fractal.id), fractal.name, ttl=ttl)
    try:
        fence = next_fence()
        try:
            FractalClaim.objects.create(fractal=fractal, fence=fence)
        except IntegrityError:
            raise locks.FractalBusy(fractal.name) from None
        claim = Claim(str(fractal.id), fence)
        try:
            yield claim
        finally:
            release_claim(claim)
    finally:
        locks.release_fractal_lock(str(fractal.id), token)


def release_claim(claim: Claim, token: str = "") -> None:
    """Free the fractal, if ``claim`` still holds it (a claim taken over belongs to its new owner)."""
    FractalClaim.objects.filter(fractal_id=claim.fractal_id, fence=claim.fence).delete()
    if token:
        locks.release_fractal_lock(claim.fractal_id, token)
