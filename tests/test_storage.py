"""The archives/backups stores behave the same on disk and on a real S3 server over HTTP."""

import errno
import hashlib
import os
from pathlib import Path

import pytest

from strix.envconfig import storage_backends
from strix.storage import DiskStore, StorageError, StoredFileNotFound, UnsafeNameError, get_store
from tests.s3server import SECRET_KEY

MB = 1024 * 1024


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(field)


def reset_peak_rss() -> int:
    """Reset this process's peak RSS (Linux clear_refs) and return the current RSS in KiB."""
    Path("/proc/self/clear_refs").write_text("5")
    return _status_kb("VmRSS")


def test_50_mb_round_trip_in_small_writes_with_flat_memory(storage_backend):
    store = get_store("archives")
    block = os.urandom(16 * 1024)
    written = hashlib.sha256()
    store.check()  # connect first: creating a client is a fixed cost, not growth with file size
    baseline = reset_peak_rss()
    with store.open_write("fractal-1/archive-1.strix-archive") as stream:
        for i in range(50 * MB // len(block)):
            piece = block[i % 97 :] + block[: i % 97]
            written.update(piece)
            stream.write(piece)
    read = hashlib.sha256()
    with store.open_read("fractal-1/archive-1.strix-archive") as stream:
        while data := stream.read(64 * 1024):
            read.update(data)
    growth_mb = (_status_kb("VmHWM") - baseline) / 1024
    assert read.hexdigest() == written.hexdigest()
    assert store.size("fractal-1/archive-1.strix-archive") == 50 * MB
    print(f"{storage_backend}: peak RSS growth {growth_mb:.1f} MB for 50 MB")
    assert growth_mb < 30, f"peak RSS grew by {growth_mb:.1f} MB"


def test_list_exists_size_and_delete(storage_backend):
    store = get_store("backups")
    for name, body in [("a/one.bin", b"1"), ("a/two.bin", b"22"), ("b/three.bin", b"333")]:
        with store.open_write(name) as stream:
            stream.write(body)
    assert [(f.name, f.size) for f in store.list()] == [("a/one.bin", 1), ("a/two.bin", 2), ("b/three.bin", 3)]
    assert [f.name for f in store.list("a/")] == ["a/one.bin", "a/two.bin"]
    assert store.exists("a/two.bin") and not store.exists("a/missing.bin")
    assert store.size("b/three.bin") == 3
    store.delete("a/two.bin")
    assert not store.exists("a/two.bin")
    assert [f.name for f in store.list()] == ["a/one.bin", "b/three.bin"]
    with pytest.raises(StoredFileNotFound):
        with store.open_read("a/two.bin"):
            pass


def test_archives_and_backups_are_kept_apart(storage_backend):
    with get_store("archives").open_write("x.bin") as stream:
        stream.write(b"archive")
    assert get_store("backups").list() == []


def test_interrupted_upload_leaves_nothing_behind(storage_backend, s3_server):
    store = get_store("archives")
    with pytest.raises(RuntimeError, match="worker died"):
        with store.open_write("f/interrupted.strix-archive") as stream:
            for _ in range(20):
                stream.write(os.urandom(MB))  # past two S3 parts
            raise RuntimeError("worker died")
    assert store.list() == []
    if storage_backend == "s3":
        uploads = s3_server.client().list_multipart_uploads(Bucket=store.bucket).get("Uploads", [])
        assert uploads == []
    else:
        assert [p for p in store.base.rglob("*") if p.is_file()] == []


def test_discard_partial_removes_what_a_killed_writer_left(storage_backend, s3_server):
    store = get_store("archives")
    context = store.open_write("f/killed.strix-archive")
    stream = context.__enter__()  # a writer that never finishes, as when its process is killed
    for _ in range(10):
        stream.write(os.urandom(MB))
    store.discard_partial("f/killed.strix-archive")
    if storage_backend == "s3":
        assert s3_server.client().list_multipart_uploads(Bucket=store.bucket).get("Uploads", []) == []
    else:
        assert [p for p in store.base.rglob("*") if p.is_file()] == []
    assert not store.exists("f/killed.strix-archive")


@pytest.mark.parametrize("name", ["../x", "/etc/passwd", "a/../../x", "a//b", "", "a/./b", "a\\..\\b"])
def test_unsafe_names_are_refused_before_any_io(storage_backend, name):
    store = get_store("archives")
    with pytest.raises(UnsafeNameError):
        with store.open_write(name) as stream:
            stream.write(b"x")
    with pytest.raises(UnsafeNameError):
        store.exists(name)


def test_symlink_escaping_the_base_directory_is_refused(tmp_path):
    base, outside = tmp_path / "archives", tmp_path / "outside"
    base.mkdir()
    outside.mkdir()
    (base / "escape").symlink_to(outside)
    store = DiskStore("archives", base)
    with pytest.raises(UnsafeNameError, match="resolves outside"):
        with store.open_write("escape/file.bin") as stream:
            stream.write(b"x")
    assert list(outside.iterdir()) == []


def test_files_are_0600_and_directories_0700_whatever_the_umask(tmp_path):
    store = DiskStore("archives", tmp_path / "archives")
    previous = os.umask(0)
    try:
        with store.open_write("a/b/file.bin") as stream:
            stream.write(b"secret")
    finally:
        os.umask(previous)
    assert (tmp_path / "archives" / "a" / "b" / "file.bin").stat().st_mode & 0o777 == 0o600
    for directory in ("archives", "archives/a", "archives/a/b"):
        assert (tmp_path / directory).stat().st_mode & 0o777 == 0o700, directory


def test_existing_file_is_never_overwritten(tmp_path):
    store = DiskStore("archives", tmp_path)
    with store.open_write("same.bin") as stream:
        stream.write(b"first")
    with pytest.raises(StorageError):
        with store.open_write("same.bin") as stream:
            stream.write(b"second")
    assert (tmp_path / "same.bin").read_bytes() == b"first"
    assert [p.name for p in tmp_path.iterdir()] == ["same.bin"]


def test_disk_full_is_one_clear_message(tmp_path, monkeypatch):
    # A full disk cannot be produced here without privileges, so the file's write raises ENOSPC.
    store = DiskStore("archives", tmp_path)
    with pytest.raises(StorageError, match="disk is full") as caught:
        with store.open_write("big.bin") as stream:
            monkeypatch.setattr(stream, "_stream", _FullDisk())
            stream.write(b"x")
    assert str(tmp_path) in str(caught.value)
    assert list(tmp_path.iterdir()) == []


class _FullDisk:
    def write(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    def close(self):
        pass


def test_unwritable_directory_is_reported_by_check(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StorageError, match="could not be written"):
        DiskStore("archives", blocker / "sub").check()


def test_unreachable_s3_endpoint_is_one_line_naming_it_without_secrets(settings):
    s3 = {
        "bucket_name": "any",
        "endpoint_url": "http://127.0.0.1:1",
        "access_key": "AKIA-TEST",
        "secret_key": SECRET_KEY,
        "region_name": "us-east-1",
    }
    settings.STORAGES = {**settings.STORAGES, **storage_backends(s3, "/unused", "/unused")}
    store = get_store("archives")
    for action in (store.check, lambda: store.exists("x"), lambda: store.open_write("x").__enter__().write(b"")):
        with pytest.raises(StorageError) as caught:
            action()
            store.list()
        message = str(caught.value)
        assert "unreachable" in message and "http://127.0.0.1:1" in message
        assert "\n" not in message and SECRET_KEY not in message


def test_missing_bucket_is_named(s3_server, settings):
    settings.STORAGES = {
        **settings.STORAGES,
        **storage_backends(s3_server.settings_for("no-such-bucket"), "/unused", "/unused"),
    }
    with pytest.raises(StorageError, match="bucket no-such-bucket does not exist"):
        get_store("archives").check()
    with pytest.raises(StorageError, match="bucket no-such-bucket does not exist"):
        with get_store("archives").open_write("x.bin") as stream:
            stream.write(b"x")


def test_storage_check_reports_a_misconfigured_store(s3_server, settings):
    from strix import checks

    settings.STORAGES = {
        **settings.STORAGES,
        **storage_backends(s3_server.settings_for("no-such-bucket"), "/unused", "/unused"),
    }
    assert {e.id for e in checks.check_storage()} == {"strix.E004"}


def test_settings_pick_s3_when_a_bucket_is_configured():
    s3 = {"bucket_name": "b", "endpoint_url": "http://minio:9000", "access_key": "a", "secret_key": "s"}
    backends = storage_backends({**s3, "region_name": "eu-west-1"}, "/a", "/b")
    assert backends["archives"]["OPTIONS"]["location"] == "archives"
    assert backends["backups"]["OPTIONS"]["location"] == "backups"
    assert backends["archives"]["OPTIONS"]["client_config"].s3 == {"addressing_style": "path"}
    assert storage_backends({}, "/a", "/b")["archives"]["BACKEND"].endswith("FileSystemStorage")


def _write_small(store, name):
    with store.open_write(name) as stream:
        stream.write(b"small")


def test_refused_credentials_are_one_line_naming_the_variables_without_the_secret(settings):
    from tests.s3server import S3Server

    server = S3Server(enforce_credentials=True)
    try:
        settings.STORAGES = {**settings.STORAGES, **storage_backends(server.settings_for("any"), "/a", "/b")}
        store = get_store("archives")
        for action in (store.check, store.list, lambda: _write_small(store, "y.bin")):
            with pytest.raises(StorageError) as caught:
                action()
            message = str(caught.value)
            assert "refused the credentials" in message and "STRIX_S3_ACCESS_KEY" in message
            assert "\n" not in message and SECRET_KEY not in message
    finally:
        server.stop()
