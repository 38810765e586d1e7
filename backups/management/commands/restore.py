from django.core.management.base import CommandError

from backups import pgtools
from backups.command_base import BackupCommand
from backups.services import BackupInfo, backup_source, backup_store, restore_backup


class Command(BackupCommand):
    help = (
        "Restore a PostgreSQL backup, replacing the current database in one transaction. The whole file is "
        "authenticated first; nothing changes unless it is genuine and you confirm."
    )

    def add_arguments(self, parser):
        parser.add_argument("--restore-file", required=True, help="backup file path, or a name from list_backups")
        self.add_dir_argument(parser)
        parser.add_argument("--non-interactive", action="store_true", help="do not ask for confirmation")

    def handle(self, *args, restore_file, dir, non_interactive, **options):
        if not non_interactive and not self.has_terminal():
            raise CommandError(
                "restore replaces the whole database and needs a confirmation; run it on a terminal or pass "
                "--non-interactive."
            )
        label, opener = backup_source(backup_store(dir), restore_file)
        confirm = (lambda info: True) if non_interactive else self._ask
        if restore_backup(opener, label, confirm, self.say):
            self.say(f"restore complete from {label}")
        else:
            raise CommandError("restore not confirmed; the database was not changed.")

    def _ask(self, info: BackupInfo) -> bool:
        self.stdout.write(
            f"Backup made {info.created} by Strix Data Protection {info.app_version} from PostgreSQL "
            f"{info.postgres_version}, database {info.database}.\n"
            f"Restoring REPLACES everything in database {pgtools.database_name()}: users, fractals, alerts, "
            "saved searches, notebooks, archive records."
        )
        return input("Type 'restore' to go on: ").strip() == "restore"
