"""PostgreSQL backups: create (pg_dump → container → storage), list, prune, restore (all or nothing)."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from django.conf import settings

from backups import pgtools
from backups.naming import backup_name, is_backup_name
from strix.crypto.container import ContainerWriter
from strix.crypto.errors import ContainerError
from strix.crypto.files import open_input, verify_stream
from strix.crypto.keys import Keyring
from strix.crypto.reader import ContainerReader, read_plain_header
from strix.errors import OperatorError
from strix.storage import DiskStore, StorageError, Store, get_store

Say = Callable[[str], None]


class BackupError(OperatorError):
    pass


@dataclass(frozen=True)
class BackupInfo:
    name: str
    size: int | None
    created: str
    app_version: str
    postgres_version: str
    database: str
    key_id: str

    @classmethod
    def from_header(cls, name: str, size: int | None, header) -> BackupInfo:
        meta = header.metadata
        return cls(
            name=name,
            size=size,
            created=header.created,
            app_version=header.app_version,
            postgres_version=str(meta.get("postgres_version", "?")),
            database=str(meta.get("database", "?")),
            key_id=header.key_id,
        )


def backup_store(install_dir: Path | None = None) -> Store:
    """The backups store; ``install_dir`` moves a disk store to ``install_dir/backups``."""
    store = get_store("backups")
    if install_dir is not None and isinstance(store, DiskStore):
        return DiskStore("backups", Path(install_dir) / "backups")
    return store


def create_backup(store: Store, say: Say) -> BackupInfo:
    """Dump the database straight into an encrypted container in the store: no plaintext on disk."""
    database, version = pgtools.database_name(), pgtools.server_version()
    name = _unused_name(store)
    say(f"backing up database {database} (PostgreSQL {version}) to {store.describe()}")
    metadata = {"database": database, "postgres_version": version}
    keyring = Keyring.from_settings()
    with store.open_write(name) as sink:
        with ContainerWriter(sink, keyring, "backup", metadata, app_version=settings.APP_VERSION) as writer:
            with pgtools.dump_stream() as blocks:
                for block in blocks:
                    writer.write(block)
    size = store.size(name)
    trailer = writer.trailer
    say(f"wrote {size:,} bytes ({trailer.plaintext_bytes:,} bytes of pg_dump output, {trailer.chunks:,} chunks)")
    return BackupInfo.from_header(name, size, writer.header)


def _unused_name(store: Store) -> str:
    """A name not yet taken: names carry the second, and a second backup in it waits for the next."""
    for _ in range(5):
        name = backup_name()
        if not store.exists(name):
            return name
        time.sleep(1.0 - time.time() % 1.0 + 0.01)
    raise BackupError(f"{store.describe()} already holds {name}; is another backup running?")


def list_backups(store: Store) -> list[BackupInfo]:
    """Backups in the store, oldest first, from their headers (bodies are not read)."""
    found = []
    for stored in store.list():
        if not is_backup_name(stored.name.rsplit("/", 1)[-1]):
            continue
        try:
            with store.open_read(stored.name) as source:
                header = read_plain_header(source)
        except ContainerError as e:
            raise BackupError(f"{stored.name}: {e}") from None
        found.append(BackupInfo.from_header(stored.name, stored.size, header))
    return sorted(found, key=lambda info: info.name)


def prune_backups(store: Store, keep: int, say: Say) -> list[str]:
    """Delete the oldest backups so that ``keep`` remain (newest kept)."""
    names = [info.name for info in list_backups(store)]
    doomed = names[: max(len(names) - keep, 0)]
    for name in doomed:
        store.delete(name)
        say(f"deleted old backup {name} (keeping the newest {keep})")
    return doomed


def backup_source(store: Store, restore_file: str) -> tuple[str, Callable[[], AbstractContextManager[BinaryIO]]]:
    """Where ``restore_file`` is: a local path, else a name in the backups store."""
    path = Path(restore_file)
    if path.is_dir():
        raise BackupError(f"{path} is a directory, not a backup file.")
    if path.is_file():
        return str(path), lambda: open_input(path)
    try:
        if store.exists(restore_file):
            return restore_file, lambda: store.open_read(restore_file)
    except StorageError:
        pass  # not a valid name in the store: report it as missing below
    raise BackupError(f"no backup {restore_file}: not a file here, nor a backup in {store.describe()}.")


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".") if part.isdigit())


def verify_backup(opener, label: str, say: Say) -> BackupInfo:
    """Authenticate the whole backup; refuse one that is not a backup or comes from a newer release."""
    say(f"authenticating {label}")
    with opener() as source:
        verified = verify_stream(source, Keyring.from_settings())
    header = verified.header
    if header.kind != "backup":
        raise BackupError(f"{label} is a fractal archive, not a database backup; restore it with `archives restore`.")
    if _version(header.app_version) > _version(settings.APP_VERSION):
        raise BackupError(
            f"{label} was made by Strix Data Protection {header.app_version}, newer than this {settings.APP_VERSION}; "
            "upgrade before restoring it."
        )
    say(f"authentic: {verified.trailer.plaintext_bytes:,} bytes in {verified.trailer.chunks:,} chunks authenticated")
    return BackupInfo.from_header(label, None, header)


def restore_backup(opener, label: str, confirm: Callable[[BackupInfo], bool], say: Say) -> bool:
    """Verify, confirm, then replace the database in one transaction. False if not confirmed."""
    info = verify_backup(opener, label, say)
    if not confirm(info):
        say("not confirmed; the database was not changed")
        return False
    say(f"restoring {label} into database {pgtools.database_name()} (one transaction)")
    with opener() as source:
        reader = ContainerReader(source, Keyring.from_settings())
        # Re-read and re-authenticated as it streams: a file changed since the check makes the reader
        # fail, and pg_restore is killed before it commits.
        pgtools.restore_from(iter(reader))
    if reader.trailer is None:
        raise BackupError(f"{label} was not read to its end; the database was not changed.")
    say("database restored")
    return True
