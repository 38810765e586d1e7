"""PostgreSQL backup and restore, on disk and on the S3 server, against the real test database."""

import io
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from archives.models import Archive
from backups import pgtools
from backups.command_base import BackupCommand
from backups.naming import is_backup_name
from backups.services import backup_store
from strix.crypto.container import ContainerWriter
from strix.crypto.keys import Keyring, generate_key
from strix.fractals.models import Fractal

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def own_backup_directory(settings, tmp_path):
    """Each test starts with no backups (the storage_backend fixture may then move them to S3)."""
    from strix.envconfig import storage_backends

    settings.STRIX_BACKUP_DIR = tmp_path / "backups"
    settings.STORAGES = {
        **settings.STORAGES,
        **storage_backends({}, settings.STRIX_ARCHIVE_DIR, settings.STRIX_BACKUP_DIR),
    }


def snapshot() -> str:
    """Every row Django knows, as dumpdata prints them: equal snapshots mean equal data."""
    out = io.StringIO()
    call_command("dumpdata", "--all", "--indent", "0", stdout=out)
    return out.getvalue()


def run(command, *args):
    out = io.StringIO()
    call_command(command, *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def make_backup() -> str:
    out = run("backup", "--non-interactive")
    name = out.strip().splitlines()[-1].rsplit(" ", 1)[-1]
    assert is_backup_name(name), out
    return name


@pytest.fixture
def populated(make_fractal, make_user):
    fractal = make_fractal("evidence", description="case 42", retention_days=30)
    user = make_user("analyst", administers=[fractal])
    archive = Archive.objects.create(fractal=fractal, status=Archive.Status.COMPLETED, row_count=10, sha256="ab" * 32)
    return fractal, user, archive


def change_everything(populated):
    fractal, user, archive = populated
    Fractal.objects.create(name="added-after-backup")
    user.delete()
    archive.row_count = 999
    archive.save()


def test_round_trip_restores_the_database_as_it_was(storage_backend, populated):
    before = snapshot()
    name = make_backup()
    change_everything(populated)
    assert snapshot() != before

    out = run("restore", "--restore-file", name, "--non-interactive")
    assert "restore complete" in out
    connection.close()  # pg_restore recreated the tables under this connection's feet
    assert snapshot() == before


def _rewrite(name: str, damage) -> None:
    store = backup_store()
    with store.open_read(name) as source:
        blob = bytearray(source.read())
    store.delete(name)
    with store.open_write(name) as sink:
        sink.write(bytes(damage(blob)))


def _flip(blob):
    blob[len(blob) // 2] ^= 0x01
    return blob


def _truncate(blob):
    return blob[: len(blob) * 2 // 3]


@pytest.mark.parametrize("damage, message", [(_flip, "failed authentication"), (_truncate, "truncated")])
def test_damaged_backup_is_refused_before_touching_the_database(storage_backend, populated, damage, message):
    name = make_backup()
    _rewrite(name, damage)
    change_everything(populated)
    after_change = snapshot()
    with pytest.raises(CommandError, match=message):
        run("restore", "--restore-file", name, "--non-interactive")
    assert snapshot() == after_change


def test_wrong_key_is_refused_naming_the_key_id(storage_backend, populated, settings):
    name = make_backup()
    change_everything(populated)
    after_change = snapshot()
    settings.STRIX_BACKUP_ENCRYPTION_KEY = generate_key()
    with pytest.raises(CommandError, match="key id [0-9a-f]{16}"):
        run("restore", "--restore-file", name, "--non-interactive")
    assert snapshot() == after_change


@pytest.mark.parametrize(
    "make_path, message", [(lambda tmp: tmp / "nope.strix-backup", "no backup"), (lambda tmp: tmp, "is a directory")]
)
def test_missing_file_or_directory_is_refused(populated, tmp_path, make_path, message):
    before = snapshot()
    with pytest.raises(CommandError, match=message):
        run("restore", "--restore-file", str(make_path(tmp_path)), "--non-interactive")
    assert snapshot() == before


def test_backup_from_a_newer_release_is_refused(populated, tmp_path):
    path = tmp_path / "strix-backup-20990101-000000.strix-backup"
    with (
        open(path, "wb") as sink,
        ContainerWriter(sink, Keyring.from_settings(), "backup", {"database": "x"}, app_version="99.0.0") as writer,
    ):
        writer.write(b"PGDMP")
    with pytest.raises(CommandError, match="newer than this .* upgrade"):
        run("restore", "--restore-file", str(path), "--non-interactive")


def test_an_archive_is_not_restored_as_a_database(populated, tmp_path):
    path = tmp_path / "a.strix-archive"
    with open(path, "wb") as sink, ContainerWriter(sink, Keyring.from_settings(), "archive", {}) as writer:
        writer.begin_segment("2026-01-01")
        writer.write(b'{"timestamp":"2026-01-01 00:00:00"}\n')
    with pytest.raises(CommandError, match="is a fractal archive"):
        run("restore", "--restore-file", str(path), "--non-interactive")


def test_interactive_restore_answered_no_changes_nothing(populated, monkeypatch):
    name = make_backup()
    change_everything(populated)
    after_change = snapshot()
    monkeypatch.setattr(BackupCommand, "has_terminal", staticmethod(lambda: True))
    monkeypatch.setattr("builtins.input", lambda prompt="": "no")
    with pytest.raises(CommandError, match="not confirmed"):
        run("restore", "--restore-file", name)
    assert snapshot() == after_change


def test_interactive_restore_answered_restore_goes_ahead(populated, monkeypatch):
    before = snapshot()
    name = make_backup()
    change_everything(populated)
    monkeypatch.setattr(BackupCommand, "has_terminal", staticmethod(lambda: True))
    monkeypatch.setattr("builtins.input", lambda prompt="": "restore")
    run("restore", "--restore-file", name)
    connection.close()
    assert snapshot() == before


def _subprocess_env() -> dict:
    db = connection.settings_dict
    return {
        **os.environ,
        "DATABASE_URL": f"postgresql://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
    }


def test_without_a_terminal_and_without_non_interactive_restore_refuses_at_once(populated):
    name = make_backup()
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "manage.py", "restore", "--restore-file", str(settings.STRIX_BACKUP_DIR / name)],
        cwd=ROOT, env=_subprocess_env(), stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode != 0
    assert "needs a confirmation" in result.stderr
    assert time.monotonic() - started < 30


def test_decrypted_backup_is_read_by_stock_pg_restore(populated, tmp_path):
    name = make_backup()
    plain = tmp_path / "dump.pgcustom"
    call_command(
        "archives", "decrypt", "--file", str(settings.STRIX_BACKUP_DIR / name), "-o", str(plain), stderr=io.StringIO()
    )
    listing = subprocess.run(["pg_restore", "--list", str(plain)], capture_output=True, text=True, check=True)
    assert "TABLE DATA public fractals_fractal" in listing.stdout


def test_keep_prunes_the_oldest_backups(populated):
    for _ in range(3):
        make_backup()
        time.sleep(1.1)  # names carry the second
    run("backup", "--keep", "2")
    names = [line.split()[0] for line in run("list_backups").splitlines()[1:]]
    assert len(names) == 2 and names == sorted(names)


def test_list_reads_headers_only(storage_backend, populated):
    name = make_backup()
    out = run("list_backups")
    assert name in out and settings.APP_VERSION in out and connection.settings_dict["NAME"] in out


def test_no_command_line_carries_the_password_or_the_key_during_a_backup(populated, monkeypatch):
    secret_password = "pw-that-must-not-leak-7f3a"
    monkeypatch.setitem(connection.settings_dict, "PASSWORD", secret_password)  # trust auth ignores it
    with connection.cursor() as cursor:  # enough data that pg_dump is still running while we look
        cursor.execute("CREATE TABLE bulk_for_backup AS SELECT g, md5(g::text) AS h FROM generate_series(1, 300000) g")
    original_write = ContainerWriter.write

    def slow_write(self, data):
        time.sleep(0.3)
        return original_write(self, data)

    monkeypatch.setattr(ContainerWriter, "write", slow_write)
    seen, environments, done = [], [], threading.Event()

    def scan():
        while not done.is_set():
            for pid in os.listdir("/proc"):
                if pid.isdigit():
                    try:
                        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
                        if "pg_dump" in cmdline:
                            environments.append(Path(f"/proc/{pid}/environ").read_bytes())
                        seen.append(cmdline)
                    except OSError:
                        pass
            time.sleep(0.05)

    scanner = threading.Thread(target=scan)
    scanner.start()
    try:
        make_backup()
    finally:
        done.set()
        scanner.join()
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE bulk_for_backup")
    key = settings.STRIX_BACKUP_ENCRYPTION_KEY
    assert any("pg_dump" in line for line in seen), "the scan never saw pg_dump running"
    assert not [line for line in seen if secret_password in line or key in line]
    assert environments and not [env for env in environments if key.encode() in env]
    assert any(f"PGPASSWORD={secret_password}".encode() in env for env in environments)
    assert secret_password not in " ".join(pgtools.dump_command())


def test_strix_setup_installs_backs_up_lists_and_restores_for_cron(populated, tmp_path):
    install = tmp_path / "opt-strix"
    setup = Path(sys.executable).with_name("strix-setup")
    env = _subprocess_env()
    first = subprocess.run([setup, "--install", "--bare", "--dir", install], capture_output=True, text=True, env=env)
    assert first.returncode == 0, first.stderr
    dotenv = (install / ".env").read_text()
    assert (install / ".env").stat().st_mode & 0o777 == 0o600 and "STRIX_BACKUP_ENCRYPTION_KEY=" in dotenv
    subprocess.run(
        [setup, "--install", "--bare", "--dir", install], capture_output=True, text=True, env=env, check=True
    )
    assert (install / ".env").read_text() == dotenv  # the key is never overwritten

    backup = subprocess.run(
        [setup, "--backup", "--dir", install, "--non-interactive"], capture_output=True, text=True, env=env
    )
    assert backup.returncode == 0, backup.stderr
    lines = backup.stdout.strip().splitlines()
    assert all(line.startswith("[20") for line in lines)
    name = lines[-1].rsplit(" ", 1)[-1]
    assert (install / "backups" / name).is_file()

    listing = subprocess.run([setup, "--list-backups", "--dir", install], capture_output=True, text=True, env=env)
    assert name in listing.stdout

    before = snapshot()
    Fractal.objects.create(name="after-cron-backup")
    restore = subprocess.run(
        [setup, "--restore", "--restore-file", name, "--dir", install, "--non-interactive"],
        capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert restore.returncode == 0, restore.stderr
    connection.close()
    assert snapshot() == before


def test_strix_setup_failure_is_one_timestamped_line_and_a_non_zero_exit(tmp_path):
    setup = Path(sys.executable).with_name("strix-setup")
    env = {**_subprocess_env(), "DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/no_such_database_here"}
    result = subprocess.run([setup, "--backup", "--dir", tmp_path], capture_output=True, text=True, env=env)
    assert result.returncode == 1
    assert "FAILED:" in result.stderr and "no_such_database_here" in result.stderr
    assert "Traceback" not in result.stderr
    assert not any((tmp_path / "backups").glob("*.strix-backup"))


def test_generate_key_prints_a_valid_key():
    setup = Path(sys.executable).with_name("strix-setup")
    key = subprocess.run([setup, "--generate-key"], capture_output=True, text=True, check=True).stdout.strip()
    assert Keyring.from_values(key).current_id
