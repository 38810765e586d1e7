"""Where archives and backups are kept: disk (Django's FileSystemStorage) or S3 (django-storages).

The only package that touches the storage backends. The rest of the code asks :func:`get_store` for
the ``archives`` or ``backups`` store and uses its small interface (``base.Store``): streaming write
(atomic publish), streaming read, exists, size, list, delete. Every failure becomes a
:class:`StorageError` that names the store and what to check.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.files.storage import storages

from strix.storage.base import StorageError, Store, StoredFile, StoredFileNotFound, UnsafeNameError, validate_name
from strix.storage.disk import DiskStore
from strix.storage.s3 import S3Store

__all__ = [
    "DiskStore",
    "S3Store",
    "StorageError",
    "Store",
    "StoredFile",
    "StoredFileNotFound",
    "UnsafeNameError",
    "get_store",
    "validate_name",
]


def get_store(kind: str) -> Store:
    """The store for ``archives`` or ``backups``, as configured in ``settings.STORAGES``."""
    backend = storages.create_storage(settings.STORAGES[kind])
    if hasattr(backend, "bucket_name"):
        return S3Store(kind, backend)
    return DiskStore(kind, Path(backend.location))
