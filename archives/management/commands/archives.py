"""``manage.py archives``: verify and decrypt archive and backup files."""

import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from strix.crypto.errors import ContainerError
from strix.crypto.files import decrypt_file, describe, open_input, verify_file, verify_stream
from strix.crypto.keys import Keyring


class Command(BaseCommand):
    help = "Work with fractal archives. Run `archives SUBCOMMAND --help` for each subcommand."
    # verify/decrypt need only the key: they must work on a laptop without ClickHouse or Redis.
    requires_system_checks = []

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="subcommand", required=True, metavar="SUBCOMMAND")
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

    def handle(self, *args, subcommand, **options):
        try:
            keyring = Keyring.from_settings()
            if subcommand == "verify":
                self._print(verify_file(options["file"], keyring))
            elif subcommand == "decrypt":
                self._decrypt(options["file"], options["output"], keyring)
        except ContainerError as e:
            raise CommandError(f"{options.get('file')}: {e}") from None

    def _decrypt(self, path: Path, output: Path | None, keyring: Keyring) -> None:
        if output is None:
            with open_input(path) as source:
                verify_stream(source, keyring, sys.stdout.buffer)
            return
        if output.is_dir():
            raise CommandError(f"{output} is a directory; give a file name with -o.")
        verified = decrypt_file(path, output, keyring)
        self.stderr.write(f"{path}: authentic; wrote {verified.trailer.plaintext_bytes} bytes to {output}.")

    def _print(self, verified):
        self.stdout.write("authentic: every chunk and the trailer verified")
        for label, value in describe(verified):
            self.stdout.write(f"{label:>16}: {value}")
