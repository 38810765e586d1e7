"""Writing an install's ``.env``: secrets are generated once and never overwritten."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from dotenv import dotenv_values

from strix.crypto.keys import generate_key


def _generated_defaults(dev: bool, compose: bool) -> dict[str, str]:
    values = {
        "STRIX_BACKUP_ENCRYPTION_KEY": generate_key(),
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        # Flower asks for this login (FLOWER_BASIC_AUTH is set from them where Flower starts).
        "STRIX_FLOWER_USER": "admin",
        "STRIX_FLOWER_PASSWORD": secrets.token_urlsafe(18),
        # /metrics and /readyz's details ask for it (Authorization: Bearer TOKEN).
        "STRIX_METRICS_TOKEN": secrets.token_urlsafe(32),
    }
    if dev:
        values["DJANGO_DEBUG"] = "1"
    else:
        # docker-compose.yml builds the service passwords and URLs from these.
        values["STRIX_POSTGRES_PASSWORD"] = secrets.token_urlsafe(24)
        values["STRIX_CLICKHOUSE_PASSWORD"] = secrets.token_urlsafe(24)
        values["DJANGO_ALLOWED_HOSTS"] = "localhost,127.0.0.1"
    if compose:
        # strix-setup on the host recognises the install by this, and drives it through docker compose.
        values["STRIX_INSTALL_KIND"] = "compose"
    return values


def ensure_env_file(
    install_dir: Path, dev: bool = False, compose: bool = False, extra: dict[str, str] | None = None
) -> tuple[Path, list[str]]:
    """Create or complete ``install_dir/.env`` (mode 0600); returns the path and the names added.

    Existing values are kept as they are: above all an existing encryption key, since replacing it
    would make every archive and backup made under it unreadable.
    """
    install_dir.mkdir(parents=True, exist_ok=True)
    path = install_dir / ".env"
    existing = dotenv_values(path) if path.exists() else {}
    wanted = {**_generated_defaults(dev, compose), **(extra or {})}
    missing = {k: v for k, v in wanted.items() if not existing.get(k)}
    if missing:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a") as out:
            if path.stat().st_size and not path.read_bytes().endswith(b"\n"):
                out.write("\n")
            for name, value in missing.items():
                out.write(f"{name}={value}\n")
    os.chmod(path, 0o600)
    return path, sorted(missing)
