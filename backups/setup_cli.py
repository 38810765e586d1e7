"""``strix-setup``: install-time and cron-time operations of Strix Data Protection."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path

from backups.compose import APP_DIR, APP_SERVICE, ComposeError, ComposeInstall
from strix.crypto.keys import generate_key
from strix.envfile import ensure_env_file

SOURCE_DIR = Path(__file__).resolve().parent.parent  # the checkout strix-setup runs from
BACKUPS_UID = 1000  # the image's "strix" user writes DIR/backups through the bind mount


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="strix-setup",
        description="Install and maintain Strix Data Protection: write the install's .env, manage keys, and "
        "back up or restore the PostgreSQL database (made for cron: timestamped lines, non-zero exit on failure).",
        epilog="cron example: 0 3 * * * strix-setup --backup --dir /opt/strix --non-interactive --verify-after "
        "--keep-daily 7 --keep-weekly 4 --keep-monthly 6 >> /var/log/strix-backup.log 2>&1",
    )
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--install", action="store_true", help="create or complete DIR/.env with fresh secrets")
    action.add_argument("--generate-key", action="store_true", help="print a new encryption key and exit")
    action.add_argument("--backup", action="store_true", help="back up the PostgreSQL database")
    action.add_argument("--list-backups", action="store_true", help="list backups")
    action.add_argument("--restore", action="store_true", help="restore the database from --restore-file")
    action.add_argument(
        "--verify-backup", nargs="?", const="--latest", metavar="FILE",
        help="authenticate a backup (FILE, or the newest with --latest or no FILE) and check it with pg_restore "
        "--list, without touching the database",
    )  # fmt: skip
    parser.add_argument("--dir", type=Path, default=Path("/opt/strix"), help="install directory (default /opt/strix)")
    parser.add_argument("--restore-file", help="with --restore: backup file path or name from --list-backups")
    parser.add_argument("--non-interactive", action="store_true", help="never ask for confirmation (cron)")
    parser.add_argument("--keep", type=int, default=0, help="with --backup: keep the newest N backups")
    parser.add_argument("--keep-daily", type=int, default=0, help="with --backup: keep the newest of each of N days")
    parser.add_argument("--keep-weekly", type=int, default=0, help="with --backup: … of each of N ISO weeks")
    parser.add_argument("--keep-monthly", type=int, default=0, help="with --backup: … of each of N months")
    parser.add_argument("--verify-after", action="store_true", help="with --backup: verify the new backup")
    parser.add_argument("--latest", action="store_true", help="with --verify-backup: the newest backup")
    parser.add_argument(
        "--no-safety-backup", action="store_true", help="with --restore: do not back up the current database first"
    )
    parser.add_argument("--dev", action="store_true", help="with --install: a development .env (DJANGO_DEBUG=1)")
    parser.add_argument(
        "--bare", action="store_true", help="with --install: only the .env, for an install without Docker Compose"
    )
    return parser


def _fail(message: str) -> int:
    print(f"[{datetime.now(UTC):%Y-%m-%d %H:%M:%S}Z] FAILED: {message}", file=sys.stderr)
    return 1


def _inner_command(args, install: ComposeInstall) -> list[str]:
    """The same strix-setup command, as the app container runs it (its install directory is /app)."""
    if args.backup:
        argv = ["--backup", "--non-interactive"]
        for flag in ("keep", "keep_daily", "keep_weekly", "keep_monthly"):
            if getattr(args, flag):
                argv += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
        argv += ["--verify-after"] if args.verify_after else []
    elif args.list_backups:
        argv = ["--list-backups"]
    elif args.verify_backup:
        latest = args.latest or args.verify_backup == "--latest"
        argv = (
            ["--verify-backup", "--latest"]
            if latest
            else ["--verify-backup", install.name_in_backups(args.verify_backup)]
        )
    else:
        argv = ["--restore", "--restore-file", install.name_in_backups(args.restore_file)]
        argv += ["--non-interactive"] if args.non_interactive else []
        argv += ["--no-safety-backup"] if args.no_safety_backup else []
    return ["strix-setup", *argv, "--dir", APP_DIR]


def _run_in_compose(args, install: ComposeInstall) -> int:
    """Run the command inside the running Compose stack: the server's own pg_dump and pg_restore, the
    backups in DIR/backups (bind-mounted at /app/backups)."""
    try:
        argv = _inner_command(args, install)
        install.require_running("postgres", APP_SERVICE)
    except ComposeError as e:
        return _fail(str(e))
    terminal = args.restore and not args.non_interactive and sys.stdin.isatty()
    return install.run_in_app(argv, terminal=terminal)


def _run_command(args) -> int:
    """Run a backup command against the install in ``--dir`` (its .env, its backups directory)."""
    os.environ["STRIX_INSTALL_DIR"] = str(args.dir.resolve())
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "strix.settings")
    try:
        import django
        from django.core.management import call_command

        django.setup()
        if args.backup:
            call_command(
                "backup", dir=args.dir, keep=args.keep, keep_daily=args.keep_daily, keep_weekly=args.keep_weekly,
                keep_monthly=args.keep_monthly, verify_after=args.verify_after, non_interactive=args.non_interactive,
            )  # fmt: skip
        elif args.list_backups:
            call_command("list_backups", dir=args.dir)
        elif args.verify_backup:
            latest = args.latest or args.verify_backup == "--latest"
            which = {"latest": True} if latest else {"restore_file": args.verify_backup}
            call_command("verify_backup", dir=args.dir, **which)
        else:
            call_command(
                "restore", restore_file=args.restore_file, dir=args.dir, non_interactive=args.non_interactive,
                no_safety_backup=args.no_safety_backup,
            )  # fmt: skip
    except Exception as e:  # CommandError and anything else: one line in the cron log, exit 1
        return _fail(str(e))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.restore and not args.restore_file:
        parser.error("--restore needs --restore-file F (see --list-backups)")
    if args.generate_key:
        print(generate_key())
        return 0
    if args.backup or args.list_backups or args.restore or args.verify_backup:
        install = ComposeInstall.at(args.dir)
        return _run_in_compose(args, install) if install else _run_command(args)
    if not args.dev and not args.bare:
        return _install_compose(args.dir.resolve())
    path, added = ensure_env_file(args.dir.resolve(), dev=args.dev)
    if added:
        print(f"Wrote {', '.join(added)} to {path} (mode 0600).")
        print("Keep a copy of the encryption key safe: without it no archive or backup can be read.")
    else:
        print(f"{path} already complete; nothing changed.")
    return 0


def _install_compose(directory: Path) -> int:
    """Prepare a Docker Compose install in ``directory`` completely: .env (secrets, the source to build),
    docker-compose.yml, and backups/ (0700) for the bind mount; then say how to start it."""
    template = SOURCE_DIR / "docker-compose.yml"
    if not template.is_file() or not (SOURCE_DIR / "Dockerfile").is_file():
        return _fail(f"no docker-compose.yml and Dockerfile next to {SOURCE_DIR}; run strix-setup from a checkout.")
    path, added = ensure_env_file(directory, compose=True, extra={"STRIX_SOURCE_DIR": str(SOURCE_DIR)})
    compose_file = directory / "docker-compose.yml"
    if not compose_file.exists():
        shutil.copyfile(template, compose_file)
        print(f"Wrote {compose_file}.")
    elif compose_file.read_bytes() != template.read_bytes():
        print(f"Kept your {compose_file} (it differs from {template}; compare them after an upgrade).")
    backups = directory / "backups"
    backups.mkdir(mode=0o700, exist_ok=True)
    os.chmod(backups, 0o700)
    if os.geteuid() == 0:
        os.chown(backups, BACKUPS_UID, BACKUPS_UID)
    if added:
        print(f"Wrote {', '.join(added)} to {path} (mode 0600).")
        print("Keep a copy of the encryption key safe: without it no archive or backup can be read.")
    print(f"Backups go to {backups} (mode 0700). Start Strix Data Protection with:")
    print(f"  cd {directory} && docker compose up -d --build")
    print("  docker compose run --rm web python manage.py createsuperuser")
    return 0


if __name__ == "__main__":
    sys.exit(main())
