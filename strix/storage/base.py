"""What every store is: the small interface the services use, its errors, and safe names."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO

from strix.errors import OperatorError

FILE_MODE = 0o600
DIR_MODE = 0o700
PARTIAL_SUFFIX = ".partial"


class StorageError(OperatorError):
    """The store cannot do what was asked; the message names it and what to check."""


class UnsafeNameError(StorageError):
    pass


class StoredFileNotFound(StorageError):
    pass


@dataclass(frozen=True)
class StoredFile:
    name: str
    size: int
    modified: datetime | None


def validate_name(name: str) -> str:
    """Refuse, before any I/O, a name that could leave the store's base: absolute, '..', odd bytes."""
    if not isinstance(name, str) or not name or name.startswith("/") or "\\" in name or "\x00" in name:
        raise UnsafeNameError(f"refused unsafe storage name {name!r}: names are relative paths without '..'.")
    if any(part in ("", ".", "..") for part in name.split("/")):
        raise UnsafeNameError(f"refused unsafe storage name {name!r}: names are relative paths without '..'.")
    return name


class Store:
    kind: str

    def describe(self) -> str:
        raise NotImplementedError

    @contextmanager
    def open_write(self, name: str) -> Iterator[BinaryIO]:
        """Yield a writable stream; the file appears under ``name`` only if the block completes."""
        raise NotImplementedError

    @contextmanager
    def open_read(self, name: str) -> Iterator[BinaryIO]:
        raise NotImplementedError

    def exists(self, name: str) -> bool:
        raise NotImplementedError

    def size(self, name: str) -> int:
        raise NotImplementedError

    def list(self, prefix: str = "") -> list[StoredFile]:
        raise NotImplementedError

    def delete(self, name: str) -> None:
        raise NotImplementedError

    def discard_partial(self, name: str) -> None:
        """Remove what an interrupted write of ``name`` left behind (temporary files, open uploads)."""
        raise NotImplementedError

    def check(self) -> None:
        """Raise :class:`StorageError` unless the store is reachable and writable."""
        raise NotImplementedError
