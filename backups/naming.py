"""Backup file names: strix-backup-YYYYMMDD-HHMMSS[-pre-restore].strix-backup (UTC).

The time in the name is the backup's: pruning by generations reads it from there, without opening files.
A ``-pre-restore`` backup is the safety backup a restore takes of the database it is about to replace.
"""

import re
from datetime import UTC, datetime

PATTERN = re.compile(r"^strix-backup-(\d{8})-(\d{6})(-pre-restore)?\.strix-backup$")
SAFETY_SUFFIX = "-pre-restore"


def backup_name(now: datetime | None = None, safety: bool = False) -> str:
    suffix = SAFETY_SUFFIX if safety else ""
    return f"strix-backup-{(now or datetime.now(UTC)):%Y%m%d-%H%M%S}{suffix}.strix-backup"


def is_backup_name(name: str) -> bool:
    return bool(PATTERN.match(name))


def is_safety_backup(name: str) -> bool:
    match = PATTERN.match(name)
    return bool(match and match.group(3))


def backup_time(name: str) -> datetime | None:
    match = PATTERN.match(name.rsplit("/", 1)[-1])
    if not match:
        return None
    return datetime.strptime(match.group(1) + match.group(2), "%Y%m%d%H%M%S").replace(tzinfo=UTC)
