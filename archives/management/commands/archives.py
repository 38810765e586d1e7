"""``manage.py archives``: create, list, restore, delete, verify and decrypt fractal archives."""

import argparse
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from archives import services
from archives.models import Archive, RestoreJob
from archives.services.errors import require_admin
from archives.services.options import RestoreOptions
from archives.services.plan import plan_restore
from archives.services.reconcile import reconcile, reconcile_summary
from archives.services.search import search_archive
from strix import logstore
from strix.crypto.errors import ContainerError
from strix.crypto.files import decrypt_file, describe, open_input, verify_file, verify_stream
from strix.crypto.keys import Keyring
from strix.errors import OperatorError
from strix.fractals.lookup import find_fractal
from strix.fractals.models import Fractal
from strix.locks import FractalBusy
from strix.progress import ProgressBar


def _utc_time(text: str) -> datetime:
    """2026-11-20, 2026-11-20T13:00 or 2026-11-20 13:00:00 (UTC unless an offset is given)."""
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date or time like 2026-11-20 or 2026-11-20T13:00"
        ) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Command(BaseCommand):
    help = "Work with fractal archives. Run `archives SUBCOMMAND --help` for each subcommand."
    # verify/decrypt need only the key: they must work on a laptop without ClickHouse or Redis.
    requires_system_checks = []

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="subcommand", required=True, metavar="SUBCOMMAND")
        create = sub.add_parser("create", help="archive a fractal's log rows (in a worker)")
        create.add_argument("fractal", help="fractal name or id")
        create.add_argument(
            "--full",
            action="store_true",
            help="read every day from the log store (default: copy the days unchanged since the previous "
            "archive from its file, read only new or changed days)",
        )
        self._common(create)
        listing = sub.add_parser(
            "list",
            help="list archives, newest first",
            description="'days copied+read': days copied unchanged from the previous archive's file + days read "
            "from the log store.",
        )
        listing.add_argument("fractal", nargs="?", help="only this fractal (name or id)")
        restore = sub.add_parser(
            "restore",
            help="restore an archive into a fractal (in a worker)",
            description="Replaces the target's logs unless --append. Rows are staged and verified first: "
            "a damaged archive leaves the target untouched.",
        )
        restore.add_argument("archive_id")
        restore.add_argument("--target", help="fractal to restore into (default: the archive's own)")
        restore.add_argument("--append", action="store_true", help="add to the target's logs instead of replacing")
        restore.add_argument("--non-interactive", action="store_true", help="do not ask before replacing logs")
        restore.add_argument("--from", dest="time_from", type=_utc_time, help="only rows at or after this UTC time")
        restore.add_argument("--to", dest="time_to", type=_utc_time, help="only rows before this UTC time")
        restore.add_argument("--contains", default="", help="only rows whose raw log contains this text")
        restore.add_argument("--field", default="", help="only rows whose parsed field NAME=VALUE")
        restore.add_argument(
            "--dry-run",
            action="store_true",
            help="print what the restore would delete and insert, per day; change nothing",
        )
        self._common(restore)
        search = sub.add_parser(
            "search",
            help="print an archive's matching records (NDJSON) without restoring it",
            description="Reads and authenticates the stored file as it streams; nothing is written to any fractal.",
        )
        search.add_argument("archive_id")
        search.add_argument("--from", dest="time_from", type=_utc_time, help="only rows at or after this UTC time")
        search.add_argument("--to", dest="time_to", type=_utc_time, help="only rows before this UTC time")
        search.add_argument("--contains", default="", help="only rows whose raw log contains this text")
        search.add_argument("--field", default="", help="only rows whose parsed field NAME=VALUE")
        search.add_argument("--limit", type=int, help="stop after this many matches")
        search.add_argument("--as", dest="username", help="act as this user (their rights apply)")
        delete = sub.add_parser("delete", help="delete an archive: its stored file and its record")
        delete.add_argument("archive_id")
        delete.add_argument("--as", dest="username", help="act as this user (their rights apply)")
        reconcile = sub.add_parser(
            "reconcile",
            help="make archive records agree with the stored files",
            description="Records whose file is gone are marked Missing; stored archive files without a record are "
            "re-registered from their authenticated header, or reported. --dry-run changes nothing and exits "
            "non-zero on any drift (for cron as a monitor).",
        )
        reconcile.add_argument("--dry-run", action="store_true", help="report only; exit status 1 on drift")
        verify = sub.add_parser("verify", help="authenticate a whole archive or backup file and show what it holds")
        verify.add_argument("--file", required=True, type=Path, help="path of the .strix-archive/.strix-backup file")
        decrypt = sub.add_parser(
            "decrypt",
            help="write the plaintext of an archive (NDJSON) or backup (pg_dump custom format)",
            description="With -o, OUT is written only if the whole file authenticates. Without -o the "
            "plaintext streams to standard output as it is read; the exit status says whether it was genuine.",
        )
        decrypt.add_argument("--file", required=True, type=Path, help="path of the encrypted file")
        decrypt.add_argument("-o", "--output", type=Path, help="where to write the plaintext (default: stdout)")

    @staticmethod
    def _common(parser):
        parser.add_argument(
            "--wait", action="store_true", help="wait for the job, with progress; non-zero exit if it fails"
        )
        parser.add_argument("--as", dest="username", help="act as this user (their rights apply)")

    def handle(self, *args, subcommand, **options):
        try:
            getattr(self, f"_{subcommand}")(**options)
        except ContainerError as e:
            raise CommandError(f"{options.get('file')}: {e}") from None
        except FractalBusy as e:
            raise CommandError(f"{e}; try again when it has finished.") from None
        except OperatorError as e:
            raise CommandError(str(e)) from None

    # --- jobs ------------------------------------------------------------------------------------

    def _reconcile(self, dry_run, **options):
        drift = reconcile(dry_run=dry_run)
        for line in drift.lines():
            self.stdout.write(line)
        if not drift.any:
            self.stdout.write("Archive records and stored files agree.")
        elif dry_run:
            raise CommandError(f"{len(drift.lines())} difference(s) between archive records and stored files.")
        else:
            self.stdout.write(reconcile_summary(drift))

    def _user(self, username):
        if not username:
            return None  # an operator at the server's shell acts for the system
        try:
            return get_user_model().objects.get(username=username)
        except get_user_model().DoesNotExist:
            raise CommandError(f"no user is named {username!r}.") from None

    def _create(self, fractal, wait, username, full, **options):
        archive = services.request_archive(self._user(username), find_fractal(fractal), full_read=full)
        self.stdout.write(f"Archive {archive.id} of fractal {archive.fractal.name} queued.")
        if wait:
            archive = self._wait(archive, "Archiving")
            self.stdout.write(
                f"Completed: {archive.row_count:,} rows ({archive.days_description}), {archive.size_bytes:,} bytes, "
                f"{archive.file_name}"
            )

    def _restore(
        self, archive_id, target, append, non_interactive, wait, username, time_from, time_to, contains, field,
        dry_run, **options,
    ):  # fmt: skip
        archive = self._archive(archive_id)
        target_fractal = find_fractal(target) if target else archive.fractal
        user = self._user(username)
        if user is not None:  # their rights apply before anything of either fractal is read
            require_admin(user, archive.fractal)
            require_admin(user, target_fractal)
        choice = RestoreOptions.parse(time_from, time_to, contains, field)
        plan = plan_restore(archive, target_fractal, not append, choice)
        if dry_run:
            for day in plan.per_day:
                part = "" if day.whole else " (part of the day, estimated)"
                self.stdout.write(f"{day.day}  {day.rows:>12,} rows  {day.bytes:>15,} bytes{part}")
            self.stdout.write(plan.summary())
            return
        if not append:
            self._confirm_replace(archive, target_fractal, non_interactive)
        job = services.request_restore(user, archive, target=target_fractal, clear_existing=not append, options=choice)
        self.stdout.write(f"Restore {job.id} of archive {archive.id} into {target_fractal.name} queued.")
        if wait:
            job = self._wait(job, "Restoring")
            skipped = f", {job.rows_skipped:,} already present" if job.rows_skipped else ""
            read = f" Read {job.bytes_read:,} of the archive's {archive.size_bytes:,} bytes." if job.bytes_read else ""
            self.stdout.write(
                f"Completed: {job.rows_restored:,} rows restored into {target_fractal.name}{skipped}.{read}"
            )

    def _confirm_replace(self, archive: Archive, target: Fractal, non_interactive: bool) -> None:
        existing = logstore.count_rows(str(target.id))
        if non_interactive or existing == 0:
            return
        if not sys.stdin.isatty():
            raise CommandError(
                f"restoring replaces the {existing:,} log rows of fractal {target.name}; confirm on a terminal, "
                "pass --non-interactive, or use --append to keep them."
            )
        self.stdout.write(
            f"This deletes the {existing:,} log rows of fractal {target.name} and replaces them with the "
            f"{archive.row_count:,} rows of archive {archive.id} ({archive.created_at:%Y-%m-%d %H:%M} UTC)."
        )
        if input(f"Type the fractal name ({target.name}) to go on: ").strip() != target.name:
            raise CommandError("not confirmed; nothing was changed.")

    def _delete(self, archive_id, username, **options):
        archive = self._archive(archive_id)
        services.delete_archive(self._user(username), archive)
        self.stdout.write(f"Deleted archive {archive_id} and its file {archive.file_name}.")

    def _list(self, fractal, **options):
        archives = Archive.objects.select_related("fractal")
        if fractal:
            archives = archives.filter(fractal=find_fractal(fractal))
        self.stdout.write(
            f"{'id':36}  {'fractal':20} {'status':10} {'kind':9} {'created (UTC)':16} {'rows':>12} {'bytes':>14}"
            f"  {'days copied+read':>16}"
        )
        for a in archives:
            rows = f"{a.row_count:,}" if a.row_count is not None else "-"
            size = f"{a.size_bytes:,}" if a.size_bytes is not None else "-"
            created = f"{a.created_at:%Y-%m-%d %H:%M}"
            # days copied from the previous archive + days read from the log store
            days = f"{a.days_copied}+{a.days_read}" if a.days_copied is not None else "-"
            self.stdout.write(
                f"{a.id}  {a.fractal.name[:20]:20} {a.status:10} {a.kind:9} {created:16} {rows:>12} {size:>14}"
                f"  {days:>16}"
            )
            if a.status == Archive.Status.FAILED:
                self.stdout.write(f"{'':38}error: {a.error}")

    def _archive(self, archive_id) -> Archive:
        try:
            return Archive.objects.select_related("fractal").get(pk=uuid.UUID(archive_id))
        except (ValueError, Archive.DoesNotExist):
            raise CommandError(f"no archive has the id {archive_id}; see `manage.py archives list`.") from None

    def _wait(self, job, label):
        """Follow a job until it ends, with a progress bar on a terminal; fail if the job failed."""
        bar = ProgressBar(job.expected_rows or 0, label, stream=self.stderr._out)
        while job.is_active:
            time.sleep(0.5)
            job.refresh_from_db()
            bar.total = job.expected_rows or bar.total
            bar.update(job.progress_rows)
        bar.finish()
        if job.status in (Archive.Status.FAILED, RestoreJob.Status.FAILED):
            raise CommandError(f"{label.lower()} failed: {job.error}")
        return job

    def _search(self, archive_id, time_from, time_to, contains, field, limit, username, **options):
        archive = self._archive(archive_id)
        user = self._user(username)
        if user is not None:
            require_admin(user, archive.fractal)
        choice = RestoreOptions.parse(time_from, time_to, contains, field)
        bar = ProgressBar(archive.row_count or 0, "Searching", stream=self.stderr._out)
        # Bytes as stored (UTF-8) to a real stream; text when a caller captures the output (tests).
        binary = getattr(self.stdout._out, "buffer", None)
        found = 0
        for line in search_archive(archive, choice, limit, on_progress=bar.update):
            binary.write(line) if binary else self.stdout.write(line.decode(), ending="")
            found += 1
        self.stdout.flush()
        bar.finish()
        self.stderr.write(f"{found:,} matching records in archive {archive.id}.")

    # --- files -----------------------------------------------------------------------------------

    def _verify(self, file, **options):
        self._print(verify_file(file, Keyring.from_settings()))

    def _decrypt(self, file, output, **options):
        keyring = Keyring.from_settings()
        if output is None:
            with open_input(file) as source:
                verify_stream(source, keyring, sys.stdout.buffer)
            return
        if output.is_dir():
            raise CommandError(f"{output} is a directory; give a file name with -o.")
        verified = decrypt_file(file, output, keyring)
        self.stderr.write(f"{file}: authentic; wrote {verified.trailer.plaintext_bytes} bytes to {output}.")

    def _print(self, verified):
        self.stdout.write("authentic: every chunk and the trailer verified")
        for label, value in describe(verified):
            self.stdout.write(f"{label:>16}: {value}")
