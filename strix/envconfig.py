"""Typed readers for settings that come from the environment or an optional .env file.

Every knob of Strix Data Protection is read here so that a bad value fails at start-up with an
``ImproperlyConfigured`` naming the variable and what a valid value looks like.
"""

import os
import re
import sys
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def load_env_file(path: Path) -> None:
    """Load ``KEY=VALUE`` lines from ``path`` without overriding the process environment."""
    if not path.is_file():
        return
    from dotenv import dotenv_values

    for key, value in dotenv_values(path).items():
        if value is not None:
            os.environ.setdefault(key, value)


def env_raw(name: str) -> str | None:
    """The variable's value, or the content of the file ``NAME_FILE`` names (Docker secrets).

    ``NAME_FILE`` wins when both are set; one trailing newline of the file is dropped.
    """
    path = os.environ.get(f"{name}_FILE")
    if path:
        try:
            text = Path(path).read_text()
        except OSError as e:
            raise ImproperlyConfigured(f"{name}_FILE={path} cannot be read ({e.strerror or e}).") from None
        return text[:-1] if text.endswith("\n") else text
    return os.environ.get(name)


def env_str(name: str, default: str | None = None) -> str:
    value = env_raw(name)
    if value is None or value == "":
        if default is None:
            raise ImproperlyConfigured(f"{name} is not set; set it in the environment or in .env.")
        return default
    return value


def env_bool(name: str, default: bool = False) -> bool:
    raw = env_raw(name)
    if raw is None:
        return default
    lowered = raw.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean; use one of 1/0, true/false, yes/no.")


def _env_number(name: str, default, convert, minimum, kind: str):
    raw = (env_raw(name) or "").strip()
    if not raw:
        return default
    try:
        value = convert(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not {kind}; for example {name}={default}.") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name}={raw!r} must be at least {minimum}.")
    return value


def env_int(name: str, default: int, minimum: int = 0) -> int:
    return _env_number(name, default, int, minimum, "a whole number")


def env_float(name: str, default: float, minimum: float = 0) -> float:
    return _env_number(name, default, float, minimum, "a number")


def require_valid_settings() -> None:
    """Load the settings, or stop the process with one line naming the bad variable (no traceback)."""
    try:
        from django.conf import settings

        settings.INSTALLED_APPS  # noqa: B018  (importing the settings module is what validates)
    except ImproperlyConfigured as e:
        print(f"Configuration error: {e}", file=sys.stderr)
        raise SystemExit(2) from None


def env_list(name: str) -> list[str]:
    return [item.strip() for item in (env_raw(name) or "").split(",") if item.strip()]


def database_from_env() -> dict:
    """The default database from ``DATABASE_URL``, else from the ``STRIX_POSTGRES_*`` variables."""
    url = env_raw("DATABASE_URL")
    if url:
        parsed = urlparse(url)
        if parsed.scheme not in ("postgres", "postgresql") or not parsed.path.strip("/"):
            raise ImproperlyConfigured(
                f"DATABASE_URL must look like postgresql://user:password@host:5432/dbname, got scheme "
                f"{parsed.scheme!r}."
            )
        try:
            port = parsed.port
        except ValueError:
            raise ImproperlyConfigured("DATABASE_URL has a port that is not a number.") from None
        # Reserved characters in a password arrive percent-encoded (p%40ss for p@ss): decode them.
        options = {key: values[-1] for key, values in parse_qs(parsed.query).items()}
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parsed.path.strip("/")),
            "USER": unquote(parsed.username or ""),
            "PASSWORD": unquote(parsed.password or ""),
            "HOST": unquote(parsed.hostname or ""),
            "PORT": str(port or ""),
            **({"OPTIONS": options} if options else {}),
        }
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": env_str("STRIX_POSTGRES_DB", "strix"),
        "USER": env_str("STRIX_POSTGRES_USER", "postgres"),
        "PASSWORD": env_raw("STRIX_POSTGRES_PASSWORD") or "",
        "HOST": env_str("STRIX_POSTGRES_HOST", "127.0.0.1"),
        "PORT": str(env_int("STRIX_POSTGRES_PORT", 5432, minimum=1)),
    }


def clickhouse_from_env() -> dict:
    """Parse ``STRIX_CLICKHOUSE_URL`` (``clickhouse://user:password@host:9000/?http_port=8123``)."""
    url = env_str("STRIX_CLICKHOUSE_URL", "clickhouse://default:@127.0.0.1:9000/?http_port=8123")
    parsed = urlparse(url)
    if parsed.scheme not in ("clickhouse", "clickhouses") or not parsed.hostname:
        raise ImproperlyConfigured(
            "STRIX_CLICKHOUSE_URL must look like clickhouse://user:password@host:9000/?http_port=8123 "
            f"(clickhouses:// for TLS), got {parsed.scheme!r} scheme."
        )
    query = parse_qs(parsed.query)
    try:
        port = parsed.port or 9000
        http_port = int(query.get("http_port", ["8123"])[0])
    except ValueError as e:
        raise ImproperlyConfigured(f"STRIX_CLICKHOUSE_URL has a port that is not a number: {e}") from e
    return {
        "host": parsed.hostname,
        "port": port,
        "http_port": http_port,
        "user": unquote(parsed.username or "default"),
        "password": unquote(parsed.password or ""),
        "secure": parsed.scheme == "clickhouses",
    }


def clickhouse_cluster_from_env() -> dict:
    """The ClickHouse cluster settings: its name (empty: one server) and how its tables are named.

    ``STRIX_CLICKHOUSE_HTTP_PORTS`` (``host:tcp_port=http_port,…``) is only needed when cluster nodes
    serve HTTP on a port other than the URL's ``http_port`` (system.clusters knows only native ports).
    """
    name = env_str("STRIX_CLICKHOUSE_CLUSTER", "")
    if name and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ImproperlyConfigured(f"STRIX_CLICKHOUSE_CLUSTER must name a cluster of system.clusters, got {name!r}.")
    http_ports = {}
    for item in env_list("STRIX_CLICKHOUSE_HTTP_PORTS"):
        address, _, http_port = item.partition("=")
        host, _, port = address.rpartition(":")
        if not (host and port.isdigit() and http_port.isdigit()):
            raise ImproperlyConfigured(
                f"STRIX_CLICKHOUSE_HTTP_PORTS takes host:tcp_port=http_port items separated by commas, got {item!r}."
            )
        http_ports[(host, int(port))] = int(http_port)
    return {
        "name": name,
        "zookeeper_path": env_str("STRIX_CLICKHOUSE_ZK_PATH", "/clickhouse/tables/{shard}/{database}/{table}"),
        "replica_name": env_str("STRIX_CLICKHOUSE_REPLICA_NAME", "{replica}"),
        "http_ports": http_ports,
    }


def storage_backends(s3: dict, archive_dir, backup_dir) -> dict:
    """``STORAGES`` entries for archives and backups: S3 when a bucket is configured, disk otherwise."""
    if s3.get("bucket_name"):
        from botocore.config import Config

        def s3_backend(prefix: str) -> dict:
            return {
                "BACKEND": "storages.backends.s3.S3Storage",
                "OPTIONS": {
                    "bucket_name": s3["bucket_name"],
                    "endpoint_url": s3["endpoint_url"] or None,
                    "access_key": s3["access_key"] or None,
                    "secret_key": s3["secret_key"] or None,
                    "region_name": s3["region_name"],
                    "location": prefix,
                    "default_acl": None,
                    "file_overwrite": False,
                    # Path-style addressing for MinIO and friends; fail fast on an unreachable endpoint.
                    "client_config": Config(
                        s3={"addressing_style": "path"},
                        signature_version="s3v4",
                        connect_timeout=5,
                        read_timeout=120,
                        retries={"max_attempts": 3, "mode": "standard"},
                    ),
                },
            }

        return {"archives": s3_backend("archives"), "backups": s3_backend("backups")}

    def disk_backend(location) -> dict:
        return {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {
                "location": str(location),
                "file_permissions_mode": 0o600,
                "directory_permissions_mode": 0o700,
            },
        }

    return {"archives": disk_backend(archive_dir), "backups": disk_backend(backup_dir)}
