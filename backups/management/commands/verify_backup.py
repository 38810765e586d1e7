from django.core.management.base import CommandError

from backups.command_base import BackupCommand
from backups.services import backup_source, backup_store, list_backups, verify_backup


class Command(BackupCommand):
    help = (
        "Authenticate a PostgreSQL backup end to end and read its table of contents with pg_restore --list, "
        "without touching the database (for a monitor, or before relying on a backup)."
    )

    def add_arguments(self, parser):
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("--restore-file", help="backup file path, or a name from list_backups")
        which.add_argument("--latest", action="store_true", help="the newest backup in the backups storage")
        self.add_dir_argument(parser)

    def handle(self, *args, restore_file, latest, dir, **options):
        store = backup_store(dir)
        if latest:
            backups = list_backups(store)
            if not backups:
                raise CommandError(f"{store.describe()} holds no backup to verify.")
            restore_file = backups[-1].name
        label, opener = backup_source(store, restore_file)
        info = verify_backup(opener, label, self.say)
        self.say(f"{label} is a genuine, readable backup of database {info.database} made {info.created}")
