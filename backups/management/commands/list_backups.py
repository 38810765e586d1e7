from backups.command_base import BackupCommand
from backups.services import backup_store, list_backups


class Command(BackupCommand):
    help = "List the PostgreSQL backups (from their headers; nothing is decrypted)."

    def add_arguments(self, parser):
        self.add_dir_argument(parser)

    def handle(self, *args, dir, **options):
        store = backup_store(dir)
        backups = list_backups(store)
        if not backups:
            self.stdout.write(f"No backups in {store.describe()}.")
            return
        self.stdout.write(f"{'name':44} {'created (UTC)':22} {'size':>14}  {'app':8} {'postgres':9} database")
        for info in backups:
            size = f"{info.size:,}" if info.size is not None else "?"
            self.stdout.write(
                f"{info.name:44} {info.created:22} {size:>14}  {info.app_version:8} {info.postgres_version:9} "
                f"{info.database}"
            )
