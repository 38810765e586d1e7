"""Running a job: the pending→running transition, heartbeat, progress, and the final state."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from django.db import close_old_connections, connection
from django.utils import timezone

from workers import locks

ProgressCallback = Callable[[int, int | None], None]


def start_job(model, job_id, running_status) -> bool:
    """Move a pending job to running; False if it is not pending (already run, reaped or redelivered)."""
    return bool(
        model.objects.filter(pk=job_id, status=model.Status.PENDING).update(
            status=running_status, started_at=timezone.now(), heartbeat_at=timezone.now()
        )
    )


def finish_job(job, status, error: str = "", **fields) -> None:
    """Record how a job ended; only these fields are written (the heartbeat owns the progress ones)."""
    fields.update(status=status, error=error[:5000], finished_at=timezone.now())
    for name, value in fields.items():
        setattr(job, name, value)
    job.save(update_fields=list(fields))


class Heartbeat:
    """Keeps the fractal's lock alive and the record's heartbeat and progress fresh, from a thread.

    The job's own thread calls :meth:`progress` as it goes and :meth:`check`, which raises if the
    lock was lost, so that a job never runs on without its claim.
    """

    def __init__(self, job, fractal_id, on_progress: ProgressCallback | None = None):
        self.job = job
        self.fractal_id = str(fractal_id)
        self.on_progress = on_progress
        self.interval = max(min(locks.lock_ttl() / 4, 10.0), 0.2)
        self.done = 0
        self.expected: int | None = None
        self.lost: Exception | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{job.pk}", daemon=True)
        self._last_report = 0.0

    def __enter__(self):
        locks.renew_fractal_lock(self.fractal_id, self.job.lock_token)  # the worker's TTL from now on
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._beat()

    def progress(self, done: int, expected: int | None = None) -> None:
        self.done = done
        if expected is not None:
            self.expected = expected
        now = time.monotonic()
        if self.on_progress and now - self._last_report >= 1.0:
            self._last_report = now
            self.on_progress(self.done, self.expected)

    def check(self) -> None:
        if self.lost is not None:
            raise self.lost

    def _beat(self) -> None:
        type(self.job).objects.filter(pk=self.job.pk).update(
            heartbeat_at=timezone.now(), progress_rows=self.done, expected_rows=self.expected
        )

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.interval):
                try:
                    locks.renew_fractal_lock(self.fractal_id, self.job.lock_token)
                except locks.LockLost as e:
                    self.lost = e
                    return
                try:
                    self._beat()
                except Exception:  # a database hiccup must not stop the lock renewals
                    close_old_connections()
        finally:
            connection.close()
