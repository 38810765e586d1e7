"""Configuration from the environment: URLs decoded as written, numbers checked, one line per mistake."""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from strix.envconfig import clickhouse_from_env, database_from_env, env_float, env_int

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "p@ss:w/rd%"
ENCODED = "p%40ss%3Aw%2Frd%25"


def test_database_url_with_a_percent_encoded_password_reaches_postgresql_decoded(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", f"postgresql://str%40x:{ENCODED}@db.example:6543/strix?sslmode=require")
    db = database_from_env()
    assert (db["USER"], db["PASSWORD"], db["HOST"], db["PORT"], db["NAME"]) == (
        "str@x", PASSWORD, "db.example", "6543", "strix",
    )  # fmt: skip
    assert db["OPTIONS"] == {"sslmode": "require"}


def test_clickhouse_url_credentials_are_decoded(monkeypatch):
    monkeypatch.setenv("STRIX_CLICKHOUSE_URL", f"clickhouse://reader:{ENCODED}@ch:9440/?http_port=8443")
    cfg = clickhouse_from_env()
    assert (cfg["user"], cfg["password"], cfg["port"], cfg["http_port"]) == ("reader", PASSWORD, 9440, 8443)


@pytest.mark.parametrize(
    "helper, raw, message",
    [
        (env_float, "abc", "STRIX_X='abc' is not a number"),
        (env_int, "1.5", "STRIX_X='1.5' is not a whole number"),
        (env_int, "-3", "STRIX_X='-3' must be at least 0"),
    ],
)
def test_numeric_settings_refuse_bad_values_naming_the_variable(monkeypatch, helper, raw, message):
    monkeypatch.setenv("STRIX_X", raw)
    with pytest.raises(ImproperlyConfigured, match=message):
        helper("STRIX_X", 5)


@pytest.mark.parametrize(
    "variable, value",
    [
        ("STRIX_LOCK_TTL_SECONDS", "abc"),
        ("STRIX_JOB_STALL_SECONDS", "0"),
        ("STRIX_RESTORE_HOLD_DAYS", "two weeks"),
        ("DJANGO_DEBUG", "maybe"),
    ],
)
def test_a_malformed_setting_stops_manage_py_with_one_line_naming_it(variable, value):
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env={**os.environ, variable: value},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Configuration error: ") and variable in lines[0], result.stderr


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _pg_bin(name: str) -> str:
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    if not found:
        pytest.fail(f"{name} not found under /usr/lib/postgresql: install postgresql (scripts/services.sh does)")
    return str(found[-1])


@pytest.fixture
def scram_postgres():
    """A PostgreSQL cluster of its own on a free port, password-only (scram-sha-256), run as ``postgres``.

    Its directory is outside pytest's (private to root), so that the ``postgres`` user can reach it.
    """
    base = Path(tempfile.mkdtemp(prefix="strix-scram-"))
    base.chmod(0o755)
    shutil.chown(base, "postgres")
    (base / "pw").write_text(PASSWORD)
    shutil.chown(base / "pw", "postgres")
    port = _free_port()

    def as_postgres(*command):
        command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, capture_output=True, text=True, timeout=120)

    init = as_postgres(
        _pg_bin("initdb"), "-D", str(base / "data"), "-U", "strix", "--pwfile", str(base / "pw"),
        "--auth=scram-sha-256", "-E", "UTF8",
    )  # fmt: skip
    assert init.returncode == 0, init.stderr
    start = as_postgres(
        _pg_bin("pg_ctl"), "-D", str(base / "data"), "-l", str(base / "log"), "-w", "start",
        "-o", f"-p {port} -k {base} -c listen_addresses=127.0.0.1",
    )  # fmt: skip
    assert start.returncode == 0, start.stderr + (base / "log").read_text()
    try:
        env = {**os.environ, "PGPASSWORD": PASSWORD}
        created = subprocess.run(
            ["createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "strix", "strixdb"], env=env,
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert created.returncode == 0, created.stderr
        yield f"postgresql://strix:{ENCODED}@127.0.0.1:{port}/strixdb"
    finally:
        as_postgres(_pg_bin("pg_ctl"), "-D", str(base / "data"), "-m", "immediate", "stop")
        shutil.rmtree(base, ignore_errors=True)


def test_a_scram_postgresql_works_through_a_percent_encoded_database_url_for_migrate_and_backup(
    scram_postgres, tmp_path
):
    env = {**os.environ, "DATABASE_URL": scram_postgres}
    env.pop("STRIX_BACKUP_DIR", None)

    def manage(*args):
        return subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
        )

    migrated = manage("migrate", "--noinput")
    assert migrated.returncode == 0, migrated.stderr
    install = tmp_path / "install"
    install.mkdir()
    started = time.time()
    backed_up = manage("backup", "--dir", str(install))
    assert backed_up.returncode == 0, backed_up.stderr
    made = list((install / "backups").glob("strix-backup-*.strix-backup"))
    assert len(made) == 1 and made[0].stat().st_mtime >= started - 1
    assert ENCODED not in backed_up.stdout + backed_up.stderr and PASSWORD not in backed_up.stdout + backed_up.stderr


def test_secrets_can_come_from_files_named_by_their_file_variables(tmp_path):
    from strix.crypto.keys import generate_key

    key = generate_key()
    secrets = {
        "STRIX_BACKUP_ENCRYPTION_KEY": key,
        "DJANGO_SECRET_KEY": "secret-from-a-docker-secret",
        "STRIX_S3_ACCESS_KEY": "AKIAFROMFILE",
        "STRIX_S3_SECRET_KEY": "s3-secret-from-file",
    }
    env = {k: v for k, v in os.environ.items() if k not in secrets}
    for name, value in secrets.items():
        path = tmp_path / name.lower()
        path.write_text(value + "\n")  # as `echo` or an editor leaves it
        env[f"{name}_FILE"] = str(path)
    probe = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.STRIX_BACKUP_ENCRYPTION_KEY, s.SECRET_KEY, s.STRIX_S3['access_key'], s.STRIX_S3['secret_key'])"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env={**env, "DJANGO_SETTINGS_MODULE": "strix.settings"},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == list(secrets.values())


def test_a_secret_file_that_cannot_be_read_is_one_line_naming_the_variable(tmp_path):
    env = {**os.environ, "DJANGO_SECRET_KEY_FILE": str(tmp_path / "missing")}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    missing = tmp_path / "missing"
    expected = f"Configuration error: DJANGO_SECRET_KEY_FILE={missing} cannot be read (No such file or directory)."
    assert result.stderr.strip() == expected
