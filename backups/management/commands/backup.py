from django.core.management.base import CommandError

from archives.services import alerts
from backups.command_base import BackupCommand
from backups.generations import KeepPolicy
from backups.services import BackupError, backup_store, create_backup, prune_backups, verify_backup


class Command(BackupCommand):
    help = (
        "Back up the whole PostgreSQL database, encrypted, to the backups storage (for cron). With --keep and "
        "--keep-daily/--keep-weekly/--keep-monthly, older backups are then pruned (calendar UTC)."
    )

    def add_arguments(self, parser):
        self.add_dir_argument(parser)
        parser.add_argument("--non-interactive", action="store_true", help="never ask anything (backups never do)")
        parser.add_argument("--keep", type=int, default=0, help="keep the newest N backups")
        parser.add_argument(
            "--keep-daily", type=int, default=0, help="keep the newest backup of each of the last N days"
        )
        parser.add_argument("--keep-weekly", type=int, default=0, help="… of each of the last N ISO weeks")
        parser.add_argument("--keep-monthly", type=int, default=0, help="… of each of the last N months")
        parser.add_argument(
            "--verify-after", action="store_true", help="then authenticate the new backup and check it with pg_restore"
        )

    def execute(self, *args, **options):
        try:
            return super().execute(*args, **options)
        except Exception as e:  # announced at once: a failed backup run is an incident of its own
            alerts.notify("backup failed", f"the PostgreSQL backup failed: {e}")
            raise

    def handle(self, *args, dir, keep, keep_daily, keep_weekly, keep_monthly, verify_after, **options):
        if keep < 0 or min(keep_daily, keep_weekly, keep_monthly) < 0:
            raise CommandError("--keep and --keep-daily/--keep-weekly/--keep-monthly must be at least 1 when given.")
        policy = KeepPolicy(last=keep, daily=keep_daily, weekly=keep_weekly, monthly=keep_monthly)
        store = backup_store(dir)
        info = create_backup(store, self.say)
        if verify_after:
            verify_backup(lambda: store.open_read(info.name), info.name, self.say)
        try:
            prune_backups(store, policy, self.say)
        except BackupError as e:
            raise CommandError(f"backup {info.name} was written, but {e}") from None
        self.say(f"backup complete: {info.name}")
