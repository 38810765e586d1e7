from django.core.management.base import CommandError

from archives.services.reconcile import reconcile, reconcile_summary
from backups import pgtools
from backups.command_base import BackupCommand
from backups.services import BackupInfo, backup_source, backup_store, create_backup, restore_backup


class Command(BackupCommand):
    help = (
        "Restore a PostgreSQL backup, replacing the current database in one transaction. A safety backup of "
        "the current database is taken first (kept at least 7 days). The file authenticates as it streams; "
        "nothing commits unless all of it is genuine and you confirmed."
    )

    def add_arguments(self, parser):
        parser.add_argument("--restore-file", required=True, help="backup file path, or a name from list_backups")
        self.add_dir_argument(parser)
        parser.add_argument("--non-interactive", action="store_true", help="do not ask for confirmation")
        parser.add_argument("--no-safety-backup", action="store_true", help="do not back up the current database first")

    def handle(self, *args, restore_file, dir, non_interactive, no_safety_backup, **options):
        if not non_interactive and not self.has_terminal():
            raise CommandError(
                "restore replaces the whole database and needs a confirmation; run it on a terminal or pass "
                "--non-interactive."
            )
        store = backup_store(dir)
        label, opener = backup_source(store, restore_file)
        confirm = (lambda info: True) if non_interactive else self._ask
        safety = []

        def take_safety_backup():
            self.say("taking a safety backup of the current database first (--no-safety-backup skips it)")
            safety.append(create_backup(store, self.say, safety=True).name)

        if not restore_backup(
            opener, label, confirm, self.say, before=None if no_safety_backup else take_safety_backup
        ):
            raise CommandError("restore not confirmed; the database was not changed.")
        self._reconcile_archives()
        if safety:
            self.say(
                f"restore complete from {label}; the database as it was before is in safety backup {safety[0]} "
                "(kept at least 7 days)"
            )
        else:
            self.say(f"restore complete from {label}")

    def _ask(self, info: BackupInfo) -> bool:
        self.stdout.write(
            f"Backup made {info.created} by Strix Data Protection {info.app_version} from PostgreSQL "
            f"{info.postgres_version}, database {info.database}.\n"
            f"Restoring REPLACES everything in database {pgtools.database_name()}: users, fractals, alerts, "
            "saved searches, notebooks, archive records."
        )
        return input("Type 'restore' to go on: ").strip() == "restore"

    def _reconcile_archives(self) -> None:
        """The restored database's archive records may not match the stored files any more (archives
        made or deleted since the backup): reconcile them, and say what changed."""
        try:
            drift = reconcile()
        except Exception as e:  # the database is restored; this only needs running again
            self.say(f"archive records not reconciled ({e}); run: manage.py archives reconcile")
            return
        for line in drift.lines():
            self.say(line)
        self.say(reconcile_summary(drift) if drift.any else "archive records and stored files agree")
