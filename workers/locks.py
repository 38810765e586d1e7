"""The only module that talks to Redis directly: connection, health, and per-fractal locks.

(Celery talks to Redis as its broker on its own; that is configuration, not code.)
"""

from __future__ import annotations

from urllib.parse import urlparse

import redis
from django.conf import settings


class RedisUnavailable(Exception):
    """Redis did not answer; the message names the address."""


def redis_address() -> str:
    parsed = urlparse(settings.STRIX_REDIS_URL)
    return f"{parsed.hostname or '127.0.0.1'}:{parsed.port or 6379}"


def connection() -> redis.Redis:
    return redis.Redis.from_url(settings.STRIX_REDIS_URL, socket_connect_timeout=3, socket_timeout=10)


def ping() -> None:
    try:
        connection().ping()
    except redis.RedisError as e:
        raise RedisUnavailable(
            f"Redis at {redis_address()} is unreachable ({e.__class__.__name__}: {e}); "
            "check that it is running and that STRIX_REDIS_URL points to it."
        ) from e
