"""Running a job: the pending→running transition, heartbeat, progress, stall, and the final state.

Every write to a job's record goes through ``claims.write_job``: a worker whose job was taken over
changes nothing, however late it wakes up.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.utils import timezone

from archives.services.claims import Claim, ClaimLost, release_claim, write_job
from archives.services.errors import JobCancelled
from strix import locks, logstore

log = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int | None], None]


def start_job(model, job_id, running_status, deletes_rows: bool = True) -> bool:
    """Move a pending job to running; False if it is not pending (already run, reaped or redelivered),
    or if it could not own its fractal in ClickHouse (the job is then Failed, saying why).

    The job's fence is recorded in ClickHouse first: from then on, no earlier owner's DELETE can match.
    A job that deletes nothing (an archive) goes on without it: every earlier owner's fence was
    superseded when its claim was taken over or released, and an archive only reads.
    """
    job = model.objects.filter(pk=job_id, status=model.Status.PENDING).first()
    if job is None:
        return False
    claim = Claim.of(job)
    try:
        logstore.record_fence(claim.fractal_id, job.fence)
    except logstore.LogStoreError as e:
        if not deletes_rows:
            log.warning("%s %s goes on without its fence in ClickHouse: %s", model.__name__, job.pk, e)
        else:
            log.warning("%s %s failed: its fence was not recorded: %s", model.__name__, job.pk, e)
            try:
                error = f"the fractal could not be claimed in ClickHouse: {e}"
                finish_job(job, claim, model.Status.FAILED, error=error)
            except ClaimLost:
                pass  # taken over meanwhile: the record is the new owner's
            return False
    now = timezone.now()
    return bool(
        model.objects.filter(pk=job_id, status=model.Status.PENDING, fence=job.fence).update(
            status=running_status, started_at=now, heartbeat_at=now, progress_at=now
        )
    )


def finish_job(job, claim: Claim, status, error: str = "", release: bool = True, **fields) -> None:
    """Record how a job ended and (unless ``release=False``) free its fractal, in one transaction.

    Raises ClaimLost, having written nothing, if the job was taken over.
    """
    with transaction.atomic():
        write_job(job, claim, status=status, error=error[:5000], finished_at=timezone.now(), phase="", **fields)
        if release:
            release_claim(claim)
    if release:
        locks.release_fractal_lock(claim.fractal_id, job.lock_token)


def stall_seconds() -> float:
    return float(settings.STRIX_JOB_STALL_SECONDS)


RECORD_EVERY = 1.0


class Heartbeat:
    """Keeps the job's record (heartbeat, progress) and the fractal's lock fresh, from a thread.

    Each beat first writes the record under the job's fence; a beat that finds the job taken over
    stops renewing the lock at once. The job's own thread calls :meth:`progress` as it goes and
    :meth:`check`, which raises :class:`ClaimLost` (or LockLost) once the claim is gone.
    """

    def __init__(self, job, claim: Claim, on_progress: ProgressCallback | None = None):
        self.job = job
        self.claim = claim
        self.on_progress = on_progress
        self.interval = max(min(locks.lock_ttl() / 4, 10.0), 0.2)  # lock renewals
        # The record (progress, phase, a Cancel) is written and read every second: the Manage tab moves
        # while the job does, and a Cancel shows within one poll.
        self.record_interval = min(self.interval, RECORD_EVERY)
        self.done = 0
        self.expected: int | None = None
        self.phase = ""
        self.lost: Exception | None = None
        self._beaten_done = -1
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{job.pk}", daemon=True)
        self._last_report = 0.0

    def __enter__(self):
        locks.renew_fractal_lock(self.claim.fractal_id, self.job.lock_token)  # the worker's TTL from now on
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        if self.lost is None:
            try:
                self._beat()
            except (ClaimLost, JobCancelled) as e:
                self.lost = e

    def progress(self, done: int, expected: int | None = None, phase: str | None = None) -> None:
        self.done = done
        if expected is not None:
            self.expected = expected
        if phase is not None:
            self.phase = phase
        now = time.monotonic()
        # Reported once the total is known (a phase before it, Counting, has nothing to report).
        if self.on_progress and self.expected is not None and now - self._last_report >= 1.0:
            self._last_report = now
            self.on_progress(self.done, self.expected)

    def check(self) -> None:
        if self.lost is not None:
            raise self.lost

    def _beat(self) -> None:
        now = timezone.now()
        fields = {"heartbeat_at": now, "progress_rows": self.done, "expected_rows": self.expected, "phase": self.phase}
        if self.done != self._beaten_done:
            fields["progress_at"] = now
        write_job(self.job, self.claim, **fields)
        self._beaten_done = self.done
        if type(self.job).objects.filter(pk=self.job.pk, cancel_requested_at__isnull=False).exists():
            raise JobCancelled("cancelled by a user; nothing it wrote was kept")

    def _run(self) -> None:
        renewed = time.monotonic()
        try:
            while not self._stop.wait(self.record_interval):
                try:
                    self._beat()
                except (ClaimLost, JobCancelled) as e:
                    self.lost = e
                    return
                except Exception:  # a database hiccup must not stop the lock renewals
                    close_old_connections()
                if time.monotonic() - renewed < self.interval:
                    continue
                try:
                    locks.renew_fractal_lock(self.claim.fractal_id, self.job.lock_token)
                    renewed = time.monotonic()
                except locks.LockLost as e:
                    self.lost = e
                    return
        finally:
            connection.close()
