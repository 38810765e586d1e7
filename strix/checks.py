"""Start-up checks: each names what is wrong and what to do, in one line, without a traceback."""

from django.core.checks import Error, register

from strix import locks, logstore
from strix.crypto.errors import KeyConfigError
from strix.crypto.keys import Keyring
from strix.storage import StorageError, get_store


@register("strix")
def check_encryption_keys(app_configs=None, **kwargs):
    try:
        keyring = Keyring.from_settings()
    except KeyConfigError as e:
        return [Error(str(e), hint="Fix the value in .env or the environment.", id="strix.E001")]
    if keyring.current is None:
        return [
            Error(
                "STRIX_BACKUP_ENCRYPTION_KEY is not set; archives and backups cannot be encrypted.",
                hint="Run `strix-setup --generate-key` and put the key in .env.",
                id="strix.E001",
            )
        ]
    return []


@register("strix")
def check_clickhouse(app_configs=None, **kwargs):
    try:
        logstore.ping()
    except logstore.LogStoreError as e:
        return [
            Error(
                str(e),
                hint="Start ClickHouse (scripts/services.sh) or fix STRIX_CLICKHOUSE_URL.",
                id="strix.E002",
            )
        ]
    return []


@register("strix")
def check_clickhouse_cluster(app_configs=None, **kwargs):
    """With STRIX_CLICKHOUSE_CLUSTER set, tables that already exist must be laid out for it."""
    if not logstore.cluster.replicated():
        return []
    try:
        if logstore.table_engines():
            logstore.require_cluster_layout()
    except logstore.LogStoreError as e:
        return [Error(str(e), hint='See docs/OPERATIONS.md, "ClickHouse clusters".', id="strix.E006")]
    return []


@register("strix")
def check_redis(app_configs=None, **kwargs):
    try:
        locks.ping()
    except locks.RedisUnavailable as e:
        return [Error(str(e), hint="Start Redis (scripts/services.sh) or fix STRIX_REDIS_URL.", id="strix.E003")]
    return []


@register("strix")
def check_storage(app_configs=None, **kwargs):
    errors = []
    for kind in ("archives", "backups"):
        try:
            get_store(kind).check()
        except StorageError as e:
            errors.append(
                Error(
                    str(e),
                    hint="Fix STRIX_ARCHIVE_DIR / STRIX_INSTALL_DIR or the STRIX_S3_* settings.",
                    id="strix.E004",
                )
            )
    return errors
