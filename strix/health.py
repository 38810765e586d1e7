"""What /readyz reports: every component the service needs, each checked with a bound, all at once.

A check that does not answer within CHECK_SECONDS counts as down: a readiness probe must never hang
because the thing it probes does.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import timedelta

from celery import current_app
from django.conf import settings
from django.db import connections
from django.utils import timezone

from strix import locks, logstore
from strix.crypto.keys import Keyring
from strix.storage import get_store

CHECK_SECONDS = 3.0
BEAT_MAX_AGE = timedelta(minutes=10)
BEAT_TASK = "scan-archive-schedules"  # runs every 5 minutes: its last run says whether beat is alive


@dataclass(frozen=True)
class Component:
    name: str
    ok: bool
    detail: str
    seconds: float

    def to_public_json(self) -> str:
        return json.dumps({"component": self.name, "ok": self.ok})

    def to_json(self) -> str:
        return json.dumps(
            {"component": self.name, "ok": self.ok, "detail": self.detail, "seconds": round(self.seconds, 3)}
        )


def _postgresql() -> str:
    connection = connections["default"]
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    finally:
        connection.close()  # this thread's own connection
    return f"database {connection.settings_dict['NAME']} answers"


def _redis() -> str:
    locks.ping()
    return f"{locks.redis_address()} answers"


def _clickhouse() -> str:
    with logstore.bounded(CHECK_SECONDS):
        logstore.ping()
    return f"{logstore.server_address()} answers"


def _storage(kind: str) -> Callable[[], str]:
    def check() -> str:
        store = get_store(kind)
        store.check()
        return f"{store.describe()} is writable"

    return check


def _key() -> str:
    return f"key id {Keyring.from_settings().current_id}"


def _beat() -> str:
    from django_celery_beat.models import PeriodicTask

    try:
        last = PeriodicTask.objects.get(name=BEAT_TASK).last_run_at
    finally:
        connections["default"].close()
    started = locks.beat_started_at()
    if last is None or timezone.now() - last > BEAT_MAX_AGE:
        if started is not None and timezone.now() - started <= BEAT_MAX_AGE:
            return f"celery-beat started at {started:%Y-%m-%d %H:%M:%S} UTC; its first scan is due within 5 minutes"
        seen = f"last at {last:%Y-%m-%d %H:%M:%S} UTC" if last else "never"
        raise RuntimeError(f"celery-beat has not run {BEAT_TASK} within 10 minutes ({seen}); start celery beat")
    return f"{BEAT_TASK} ran at {last:%Y-%m-%d %H:%M:%S} UTC"


WORKER_PING_SECONDS = 1.0
WORKER_PING_CACHE_SECONDS = 5.0
_last_ping: tuple[float, int] | None = None  # (when, workers that answered), per process


def _worker() -> str:
    """Workers that answer a ping within a second; the answer is reused for a few seconds, so that a
    burst of /readyz calls costs one ping, not one each."""
    global _last_ping
    now = time.monotonic()
    if _last_ping is None or now - _last_ping[0] > WORKER_PING_CACHE_SECONDS:
        _last_ping = (now, len(current_app.control.ping(timeout=WORKER_PING_SECONDS) or []))
    if not _last_ping[1]:
        raise RuntimeError(f"no Celery worker answered on {settings.CELERY_TASK_DEFAULT_QUEUE!r}; start a worker")
    return f"{_last_ping[1]} worker(s) answered"


CHECKS: dict[str, Callable[[], str]] = {
    "postgresql": _postgresql,
    "redis": _redis,
    "clickhouse": _clickhouse,
    "archive storage": _storage("archives"),
    "backup storage": _storage("backups"),
    "encryption key": _key,
    "beat": _beat,
    "worker": _worker,
}


def _timed(check: Callable[[], str]) -> tuple[bool, str, float]:
    started = time.monotonic()
    try:
        return True, check(), time.monotonic() - started
    except Exception as e:  # every failure is a reading, never an error of the probe itself
        return False, str(e) or e.__class__.__name__, time.monotonic() - started


def readiness(checks: dict[str, Callable[[], str]] | None = None) -> list[Component]:
    checks = checks or CHECKS
    pool = ThreadPoolExecutor(max_workers=len(checks), thread_name_prefix="readyz")
    futures = {name: pool.submit(_timed, check) for name, check in checks.items()}
    deadline = time.monotonic() + CHECK_SECONDS
    components = []
    for name, future in futures.items():
        try:
            ok, detail, seconds = future.result(timeout=max(0.0, deadline - time.monotonic()))
        except FutureTimeout:
            ok, detail, seconds = False, f"no answer within {CHECK_SECONDS:g} s", CHECK_SECONDS
        components.append(Component(name, ok, detail, seconds))
    pool.shutdown(wait=False, cancel_futures=True)  # a hung check is abandoned, not waited for
    return components
