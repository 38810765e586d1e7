"""The only module that talks to Redis directly: connection, health, and per-fractal locks.

(Celery talks to Redis as its broker on its own; that is configuration, not code.)
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from urllib.parse import urlparse

import redis
from django.conf import settings

from strix.errors import OperatorError


class RedisUnavailable(OperatorError):
    """Redis did not answer; the message names the address."""


def redis_address() -> str:
    parsed = urlparse(settings.STRIX_REDIS_URL)
    return f"{parsed.hostname or '127.0.0.1'}:{parsed.port or 6379}"


_clients: dict[str, redis.Redis] = {}


def connection() -> redis.Redis:
    """This process's client for STRIX_REDIS_URL. One per URL, kept: a new client per call opened a TCP
    connection and loaded the lock scripts each time (4 ms a lock operation). Its pool is fork-safe."""
    url = settings.STRIX_REDIS_URL
    client = _clients.get(url)
    if client is None:
        client = _clients[url] = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=10)
    return client


def ping() -> None:
    try:
        connection().ping()
    except redis.RedisError as e:
        raise RedisUnavailable(
            f"Redis at {redis_address()} is unreachable ({e.__class__.__name__}: {e}); "
            "check that it is running and that STRIX_REDIS_URL points to it."
        ) from e


BEAT_STARTED_KEY = "strix:beat:started"


def mark_beat_started() -> None:
    """Said by celery-beat as it starts: /readyz accepts a beat whose first scan is not due yet."""
    connection().set(BEAT_STARTED_KEY, str(time.time()), ex=24 * 3600)


def beat_started_at() -> datetime | None:
    try:
        value = connection().get(BEAT_STARTED_KEY)
    except redis.RedisError:
        return None
    return datetime.fromtimestamp(float(value), UTC) if value else None


class FractalBusy(OperatorError):
    def __init__(self, fractal_name: str):
        super().__init__(f"an archive or restore is already running for fractal {fractal_name}")


class LockLost(OperatorError):
    """The lock expired and could not be renewed: another process may now hold the fractal."""


def lock_ttl() -> float:
    return float(getattr(settings, "STRIX_LOCK_TTL_SECONDS", 60))


def _lock(fractal_id: str, token: str | None = None, ttl: float | None = None) -> redis.lock.Lock:
    lock = connection().lock(f"strix:fractal-lock:{fractal_id}", timeout=ttl or lock_ttl(), thread_local=False)
    if token is not None:
        lock.local.token = token.encode()
    return lock


def acquire_fractal_lock(fractal_id: str, fractal_name: str, ttl: float) -> str:
    """Take the fractal's lock without waiting; returns its token. ``ttl`` covers the wait in the queue."""
    lock = _lock(fractal_id, ttl=ttl)
    try:
        if not lock.acquire(blocking=False):
            raise FractalBusy(fractal_name)
    except redis.RedisError as e:
        raise RedisUnavailable(f"Redis at {redis_address()} is unreachable ({e.__class__.__name__}).") from e
    return lock.local.token.decode()


def release_fractal_lock(fractal_id: str, token: str) -> None:
    """Release the lock if this token still holds it (an expired or stolen lock is left alone)."""
    try:
        _lock(fractal_id, token).release()
    except (redis.exceptions.LockError, redis.RedisError):
        pass


def renew_fractal_lock(fractal_id: str, token: str) -> None:
    """Reset the lock's time to live; raises :class:`LockLost` if another token holds it now.

    If the key vanished (Redis restarted, or a long pause), it is taken back when still free: the
    database claim has kept every other operation out meanwhile.
    """
    lock = _lock(fractal_id, token)
    try:
        lock.reacquire()
    except redis.exceptions.LockNotOwnedError:
        if not connection().set(lock.name, token, nx=True, px=int(lock_ttl() * 1000)):
            raise LockLost(f"the lock of fractal {fractal_id} is held by another operation") from None
    except redis.RedisError as e:
        raise LockLost(f"Redis at {redis_address()} is unreachable ({e.__class__.__name__})") from e


def fractal_lock_held(fractal_id: str, token: str | None = None) -> bool:
    """Whether the fractal is locked (by ``token``, when given)."""
    value = connection().get(f"strix:fractal-lock:{fractal_id}")
    if value is None:
        return False
    return token is None or value == token.encode()
