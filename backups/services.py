"""PostgreSQL backups: create (pg_dump → container → storage), list, prune, restore (all or nothing)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from django.conf import settings

from backups import pgtools
from backups.generations import KeepPolicy, backups_to_keep
from backups.naming import backup_name, backup_time, is_backup_name, is_safety_backup
from strix.crypto.container import ContainerWriter
from strix.crypto.errors import ContainerError
from strix.crypto.files import open_input
from strix.crypto.keys import Keyring
from strix.crypto.reader import ContainerReader, read_plain_header
from strix.errors import OperatorError
from strix.storage import DiskStore, StorageError, Store, get_store
from strix.streams import prefetched

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


def create_backup(store: Store, say: Say, safety: bool = False) -> BackupInfo:
    """Dump the database straight into an encrypted container in the store: no plaintext on disk.
    ``safety``: the backup a restore takes first, named ``…-pre-restore`` and kept at least 7 days."""
    database, version = pgtools.database_name(), pgtools.server_version()
    name = _unused_name(store, safety)
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


def _unused_name(store: Store, safety: bool = False) -> str:
    """A name not yet taken: names carry the second, and a second backup in it waits for the next."""
    for _ in range(5):
        name = backup_name(safety=safety)
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


def prune_backups(store: Store, policy: KeepPolicy, say: Say, now: datetime | None = None) -> list[str]:
    """Delete the backups the policy does not keep (KeepPolicy: the newest N, and the newest of each of
    the last N days, weeks and months); safety backups stay for 7 days. Every deletion is tried; any
    that failed is reported and then raised, so that cron sees a non-zero exit."""
    if not policy.prunes:
        return []
    created = {info.name: backup_time(info.name) for info in list_backups(store)}
    safety = {name for name in created if is_safety_backup(name.rsplit("/", 1)[-1])}
    keep = backups_to_keep(created, policy, safety, now or datetime.now(UTC))
    deleted, failed = [], []
    for name in sorted(set(created) - keep):
        try:
            store.delete(name)
        except StorageError as e:
            failed.append(name)
            say(f"could not delete {name}: {e}")
            continue
        deleted.append(name)
    if deleted:
        say(f"deleted {len(deleted)} old backup(s), keeping {policy.describe()}: {', '.join(deleted)}")
    if failed:
        raise BackupError(
            f"could not delete {len(failed)} old backup(s): {', '.join(failed)}; check the permissions or the "
            "object lock of the backups storage."
        )
    return deleted


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


def _check_header(header, label: str) -> BackupInfo:
    if header.kind != "backup":
        raise BackupError(f"{label} is a fractal archive, not a database backup; restore it with `archives restore`.")
    if _version(header.app_version) > _version(settings.APP_VERSION):
        raise BackupError(
            f"{label} was made by Strix Data Protection {header.app_version}, newer than this {settings.APP_VERSION}; "
            "upgrade before restoring it."
        )
    return BackupInfo.from_header(label, None, header)


def verify_backup(opener, label: str, say: Say) -> BackupInfo:
    """Authenticate the whole backup and read its table of contents with ``pg_restore --list``, without
    touching the database; refuse one that is not a backup or comes from a newer release."""
    say(f"authenticating {label}")
    with opener() as source:
        reader = ContainerReader(source, Keyring.from_settings())
        info = _check_header(reader.header, label)
        entries = pgtools.list_from(reader)
    trailer = reader.trailer
    say(
        f"verified: pg_restore --list reads {len(entries):,} entries; {trailer.plaintext_bytes:,} bytes in "
        f"{trailer.chunks:,} chunks authenticated"
    )
    return info


def read_backup_header(opener, label: str) -> BackupInfo:
    """The backup's authenticated header (the body is not read), for the confirmation before a restore."""
    with opener() as source:
        return _check_header(ContainerReader(source, Keyring.from_settings()).header, label)


def restore_backup(opener, label: str, confirm: Callable[[BackupInfo], bool], say: Say, before=None) -> bool:
    """Confirm, run ``before`` (the safety backup), then replace the database in one transaction, in one
    pass over the file. False if not confirmed.

    The file authenticates as it streams into pg_restore; the last block is held back until the whole
    file has authenticated, so pg_restore cannot reach the end of the dump and commit before that. A
    damaged file makes the reader fail first, pg_restore is killed, and the transaction never commits.
    """
    info = read_backup_header(opener, label)
    if not confirm(info):
        say("not confirmed; the database was not changed")
        return False
    if before is not None:
        before()
    say(f"restoring {label} into database {pgtools.database_name()} (one transaction, authenticated as it streams)")
    with opener() as source:
        reader = ContainerReader(source, Keyring.from_settings())
        pgtools.restore_from(prefetched(_holding_back_the_last_block(reader)))
    if reader.trailer is None:
        raise BackupError(f"{label} was not read to its end; the database was not changed.")
    say("database restored")
    return True


def _holding_back_the_last_block(reader: ContainerReader) -> Iterator[bytes]:
    """Each block once the next one has arrived; the last only after the reader has checked the end."""
    previous = None
    for block in reader:
        if previous is not None:
            yield previous
        previous = block
    if previous is not None:  # the iteration ended without error: the whole file is authentic
        yield previous
