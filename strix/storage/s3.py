"""The S3 store: multipart streaming upload, streaming download, clear errors.

django-storages' S3Storage holds the configuration and the boto3 connection; uploads and downloads go
through boto3 directly because its file object buffers whole files, which would break flat memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

from botocore import exceptions as boto_errors

from strix.storage.base import (
    StorageError,
    Store,
    StoredFile,
    StoredFileNotFound,
    validate_name,
)

PART_SIZE = 8 * 1024 * 1024  # multipart part size: the most a write holds in memory
_CREDENTIAL_CODES = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403", "InvalidToken"}
_MISSING_CODES = {"NoSuchKey", "404", "NotFound"}


class S3Store(Store):
    def __init__(self, kind: str, backend):
        self.kind = kind
        self.backend = backend
        self.bucket = backend.bucket_name
        self.prefix = backend.location.strip("/")
        self.endpoint = backend.endpoint_url or "AWS S3"

    @property
    def client(self):
        return self.backend.connection.meta.client

    def describe(self) -> str:
        return f"{self.kind} storage (S3 bucket {self.bucket} at {self.endpoint})"

    def key(self, name: str) -> str:
        validate_name(name)
        return f"{self.prefix}/{name}" if self.prefix else name

    def _error(self, e: Exception, doing: str) -> StorageError:
        if isinstance(e, StorageError):
            return e
        if isinstance(e, boto_errors.NoCredentialsError):
            return StorageError(f"{self.describe()}: no credentials; set STRIX_S3_ACCESS_KEY and STRIX_S3_SECRET_KEY.")
        if isinstance(e, (boto_errors.EndpointConnectionError, boto_errors.ConnectTimeoutError)) or isinstance(
            e, (boto_errors.ConnectionClosedError, boto_errors.ReadTimeoutError)
        ):
            return StorageError(
                f"{self.describe()} is unreachable: could not {doing}; check STRIX_S3_ENDPOINT ({self.endpoint}) "
                "and the network."
            )
        if isinstance(e, boto_errors.ClientError):
            code = str(e.response.get("Error", {}).get("Code", ""))
            if code == "NoSuchBucket":
                return StorageError(
                    f"{self.describe()}: bucket {self.bucket} does not exist; create it or fix STRIX_S3_BUCKET."
                )
            if code in _CREDENTIAL_CODES:
                return StorageError(
                    f"{self.describe()} refused the credentials ({code}) to {doing}; check STRIX_S3_ACCESS_KEY "
                    "and STRIX_S3_SECRET_KEY and the bucket policy."
                )
            if code in _MISSING_CODES:
                return StoredFileNotFound(f"{self.describe()} has no file for {doing}.")
            return StorageError(f"{self.describe()} could not {doing}: {code or e.__class__.__name__}.")
        return StorageError(f"{self.describe()} could not {doing}: {e.__class__.__name__}: {e}.")

    @contextmanager
    def open_write(self, name: str) -> Iterator[BinaryIO]:
        writer = _MultipartWriter(self, self.key(name), name)
        try:
            yield writer
            writer.complete()
        except BaseException:
            writer.abort()
            raise

    @contextmanager
    def open_read(self, name: str) -> Iterator[BinaryIO]:
        """A stream that reads the object as it goes; seeking starts a ranged GET at the new position,
        so a reader that needs one day of an archive downloads about that day, not the whole file."""
        stream = _RangedReader(self, self.key(name), name)
        try:
            yield stream
        finally:
            stream.close()

    def exists(self, name: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self.key(name))
            return True
        except Exception as e:
            error = self._error(e, f"look up {name}")
            if isinstance(error, StoredFileNotFound):
                return False
            raise error from e

    def size(self, name: str) -> int:
        try:
            return self.client.head_object(Bucket=self.bucket, Key=self.key(name))["ContentLength"]
        except Exception as e:
            raise self._error(e, f"look up {name}") from e

    def list(self, prefix: str = "") -> list[StoredFile]:
        base = f"{self.prefix}/" if self.prefix else ""
        found = []
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=base + prefix):
                for entry in page.get("Contents", ()):
                    found.append(StoredFile(entry["Key"][len(base) :], entry["Size"], entry.get("LastModified")))
        except Exception as e:
            raise self._error(e, "list files") from e
        return sorted(found, key=lambda f: f.name)

    def delete(self, name: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self.key(name))
        except Exception as e:
            raise self._error(e, f"delete {name}") from e

    def discard_partial(self, name: str) -> None:
        key = self.key(name)
        try:
            uploads = self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=key).get("Uploads", ())
            for upload in uploads:
                if upload["Key"] == key:
                    self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload["UploadId"])
        except Exception as e:
            raise self._error(e, f"clean up the interrupted upload of {name}") from e

    def check(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except boto_errors.ClientError as e:
            if str(e.response.get("Error", {}).get("Code")) in ("404", "NoSuchBucket"):
                raise StorageError(
                    f"{self.describe()}: bucket {self.bucket} does not exist; create it or fix STRIX_S3_BUCKET."
                ) from e
            raise self._error(e, "reach the bucket") from e
        except Exception as e:
            raise self._error(e, "reach the bucket") from e


class _MultipartWriter:
    """Buffers one part (8 MiB) at a time; small files go up in a single PUT at the end."""

    def __init__(self, store: S3Store, key: str, name: str):
        self.store, self.key, self.name = store, key, name
        self.buffer = bytearray()
        self.upload_id: str | None = None
        self.parts: list[dict] = []

    def write(self, data) -> int:
        self.buffer += data
        while len(self.buffer) >= PART_SIZE:
            with memoryview(self.buffer) as view:
                part = bytes(view[:PART_SIZE])
            del self.buffer[:PART_SIZE]
            self._upload_part(part)
        return len(data)

    def _call(self, doing: str, method, **kwargs):
        try:
            return method(Bucket=self.store.bucket, Key=self.key, **kwargs)
        except Exception as e:
            raise self.store._error(e, f"{doing} {self.name}") from e

    def _upload_part(self, body: bytes) -> None:
        client = self.store.client
        if self.upload_id is None:
            self.upload_id = self._call("start uploading", client.create_multipart_upload)["UploadId"]
        number = len(self.parts) + 1
        response = self._call("upload", client.upload_part, UploadId=self.upload_id, PartNumber=number, Body=body)
        self.parts.append({"PartNumber": number, "ETag": response["ETag"]})

    def complete(self) -> None:
        client = self.store.client
        if self.upload_id is None:
            self._call("upload", client.put_object, Body=bytes(self.buffer))
            return
        if self.buffer:
            self._upload_part(bytes(self.buffer))
            self.buffer.clear()
        self._call(
            "finish uploading",
            client.complete_multipart_upload,
            UploadId=self.upload_id,
            MultipartUpload={"Parts": self.parts},
        )

    def abort(self) -> None:
        """Abort the multipart upload so that no object and no orphaned parts remain."""
        self.buffer.clear()
        if self.upload_id is not None:
            try:
                self.store.client.abort_multipart_upload(
                    Bucket=self.store.bucket, Key=self.key, UploadId=self.upload_id
                )
            except Exception:  # the original error matters more; the reaper retries via discard_partial
                pass


class _RangedReader:
    def __init__(self, store: S3Store, key: str, name: str):
        self._store = store
        self._key = key
        self._name = name
        self._size = store.size(name)  # raises StoredFileNotFound at once, as opening a file would
        self._position = 0
        self._body = None

    def read(self, size: int = -1) -> bytes:
        if self._position >= self._size or size == 0:
            return b""
        try:
            if self._body is None:
                response = self._store.client.get_object(
                    Bucket=self._store.bucket, Key=self._key, Range=f"bytes={self._position}-"
                )
                self._body = response["Body"]
            data = self._body.read(None if size is None or size < 0 else size)
        except Exception as e:
            raise self._store._error(e, f"read {self._name}") from e
        self._position += len(data)
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._position, 2: self._size}[whence]
        position = max(0, base + offset)
        if position != self._position:
            self.close()
            self._position = position
        return position

    def tell(self) -> int:
        return self._position

    def close(self) -> None:
        if self._body is not None:
            self._body.close()
            self._body = None
