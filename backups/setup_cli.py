"""``strix-setup``: install-time and cron-time operations of Strix Data Protection."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from strix.crypto.keys import generate_key
from strix.envfile import ensure_env_file


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="strix-setup",
        description="Install and maintain Strix Data Protection: write the install's .env and manage keys.",
    )
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--install", action="store_true", help="create or complete DIR/.env with fresh secrets")
    action.add_argument("--generate-key", action="store_true", help="print a new encryption key and exit")
    parser.add_argument("--dir", type=Path, default=Path("/opt/strix"), help="install directory (default /opt/strix)")
    parser.add_argument("--dev", action="store_true", help="with --install: a development .env (DJANGO_DEBUG=1)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.generate_key:
        print(generate_key())
        return 0
    path, added = ensure_env_file(args.dir.resolve(), dev=args.dev)
    if added:
        print(f"Wrote {', '.join(added)} to {path} (mode 0600).")
        print("Keep a copy of the encryption key safe: without it no archive or backup can be read.")
    else:
        print(f"{path} already complete; nothing changed.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
