"""Backup file names: strix-backup-YYYYMMDD-HHMMSS.strix-backup (UTC)."""

import re
from datetime import UTC, datetime

PATTERN = re.compile(r"^strix-backup-(\d{8})-(\d{6})\.strix-backup$")


def backup_name(now: datetime | None = None) -> str:
    return f"strix-backup-{(now or datetime.now(UTC)):%Y%m%d-%H%M%S}.strix-backup"


def is_backup_name(name: str) -> bool:
    return bool(PATTERN.match(name))
