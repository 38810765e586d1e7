from django.core.management.base import CommandError

from backups.command_base import BackupCommand
from backups.services import backup_store, create_backup, prune_backups


class Command(BackupCommand):
    help = "Back up the whole PostgreSQL database, encrypted, to the backups storage (for cron)."

    def add_arguments(self, parser):
        self.add_dir_argument(parser)
        parser.add_argument("--non-interactive", action="store_true", help="never ask anything (backups never do)")
        parser.add_argument("--keep", type=int, help="afterwards delete the oldest backups so that N remain")

    def handle(self, *args, dir, keep, **options):
        if keep is not None and keep < 1:
            raise CommandError("--keep must be at least 1.")
        store = backup_store(dir)
        info = create_backup(store, self.say)
        if keep:
            prune_backups(store, keep, self.say)
        self.say(f"backup complete: {info.name}")
