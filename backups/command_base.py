"""What the backup commands share: timestamped output for cron logs, errors as one line."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from strix.errors import OperatorError


class BackupCommand(BaseCommand):
    # Backups need PostgreSQL and the key only: they must run while ClickHouse or Redis is down.
    requires_system_checks = []

    def add_dir_argument(self, parser):
        parser.add_argument(
            "--dir", type=Path, help="install directory; disk backups live in DIR/backups (default: settings)"
        )

    def say(self, message: str) -> None:
        self.stdout.write(f"[{datetime.now(UTC):%Y-%m-%d %H:%M:%S}Z] {message}")
        self.stdout.flush()

    def execute(self, *args, **options):
        try:
            return super().execute(*args, **options)
        except OperatorError as e:
            raise CommandError(str(e)) from None

    @staticmethod
    def has_terminal() -> bool:
        return sys.stdin.isatty()
