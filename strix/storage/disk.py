"""The disk store: files published atomically (temp file, fsync, link), 0600 in 0700 directories."""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from strix.storage.base import (
    DIR_MODE,
    FILE_MODE,
    PARTIAL_SUFFIX,
    StorageError,
    Store,
    StoredFile,
    StoredFileNotFound,
    UnsafeNameError,
    validate_name,
)


class DiskStore(Store):
    def __init__(self, kind: str, base: Path):
        self.kind = kind
        self.base = Path(base)

    def describe(self) -> str:
        return f"{self.kind} storage (directory {self.base})"

    def _path(self, name: str) -> Path:
        validate_name(name)
        base = self.base.resolve()
        path = base / name
        # A symlink anywhere on the way must not lead outside the base directory.
        if not os.path.realpath(path).startswith(str(base) + os.sep):
            raise UnsafeNameError(f"refused storage name {name!r}: it resolves outside {base}.")
        return path

    def _error(self, e: OSError, doing: str) -> StorageError:
        if e.errno == errno.ENOSPC:
            hint = "the disk is full; free space or move STRIX_ARCHIVE_DIR / the backup directory"
        elif e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            hint = "it is not writable by this user; fix its ownership and permissions"
        else:
            hint = e.strerror or str(e)
        return StorageError(f"{self.describe()} could not {doing}: {hint}.")

    def _make_dirs(self, directory: Path) -> None:
        missing = []
        while not directory.exists():
            missing.append(directory)
            directory = directory.parent
        for path in reversed(missing):
            os.mkdir(path, DIR_MODE)
            os.chmod(path, DIR_MODE)  # whatever the umask

    @contextmanager
    def open_write(self, name: str) -> Iterator[BinaryIO]:
        final = self._path(name)
        try:
            self._make_dirs(final.parent)
            temp = final.with_name(f".{final.name}.{secrets.token_hex(4)}{PARTIAL_SUFFIX}")
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
            os.fchmod(fd, FILE_MODE)  # whatever the umask
        except OSError as e:
            raise self._error(e, f"create {name}") from e
        stream = os.fdopen(fd, "wb")
        try:
            yield _DiskWriter(stream, lambda e: self._error(e, f"write {name}"))
            self._publish(stream, temp, final, name)
        except BaseException:
            stream.close()
            temp.unlink(missing_ok=True)
            raise

    def _publish(self, stream, temp: Path, final: Path, name: str) -> None:
        try:
            stream.flush()
            os.fsync(stream.fileno())
            stream.close()
            # link() refuses to replace an existing file, unlike rename(): nothing is overwritten.
            os.link(temp, final)
            os.unlink(temp)
            self._fsync_dir(final.parent)
        except OSError as e:
            raise self._error(e, f"publish {name}") from e

    @staticmethod
    def _fsync_dir(directory: Path) -> None:
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    @contextmanager
    def open_read(self, name: str) -> Iterator[BinaryIO]:
        path = self._path(name)
        try:
            stream = open(path, "rb")
        except FileNotFoundError:
            raise StoredFileNotFound(f"{self.describe()} has no file {name}.") from None
        except OSError as e:
            raise self._error(e, f"read {name}") from e
        with stream:
            yield stream

    def exists(self, name: str) -> bool:
        return self._path(name).is_file()

    def size(self, name: str) -> int:
        try:
            return self._path(name).stat().st_size
        except FileNotFoundError:
            raise StoredFileNotFound(f"{self.describe()} has no file {name}.") from None

    def list(self, prefix: str = "") -> list[StoredFile]:
        if not self.base.is_dir():
            return []
        found = []
        for root, _dirs, files in os.walk(self.base):
            for filename in files:
                if filename.startswith("."):
                    continue  # temporary files of writes in progress
                path = Path(root) / filename
                name = path.relative_to(self.base).as_posix()
                if name.startswith(prefix):
                    stat = path.stat()
                    found.append(StoredFile(name, stat.st_size, datetime.fromtimestamp(stat.st_mtime, UTC)))
        return sorted(found, key=lambda f: f.name)

    def delete(self, name: str) -> None:
        try:
            self._path(name).unlink(missing_ok=True)
        except OSError as e:
            raise self._error(e, f"delete {name}") from e

    def discard_partial(self, name: str) -> None:
        final = self._path(name)
        if final.parent.is_dir():
            for temp in final.parent.glob(f".{final.name}.*{PARTIAL_SUFFIX}"):
                temp.unlink(missing_ok=True)

    def check(self) -> None:
        try:
            self._make_dirs(self.base)
            probe = self.base / f".write-probe-{secrets.token_hex(4)}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as e:
            raise self._error(e, "be written") from e


class _DiskWriter:
    """A file opened for writing whose OS errors (disk full…) become StorageErrors naming the store."""

    def __init__(self, stream: BinaryIO, translate):
        self._stream = stream
        self._translate = translate

    def write(self, data) -> int:
        try:
            return self._stream.write(data)
        except OSError as e:
            raise self._translate(e) from e
