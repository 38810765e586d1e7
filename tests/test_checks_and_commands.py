"""Start-up checks and command errors: one clear line, no traceback."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError

from strix import checks, logstore

ROOT = Path(__file__).resolve().parent.parent


def run_manage(*args, **env):
    environment = {**os.environ, **env}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_passes_with_all_services_up():
    result = run_manage("check")
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize(
    "args",
    [("check",), ("seed_logs", "any-fractal", "--rows", "10")],
)
def test_clickhouse_down_fails_in_one_line_naming_clickhouse_and_its_address(args):
    result = run_manage(*args, STRIX_CLICKHOUSE_URL="clickhouse://default:@127.0.0.1:1/?http_port=2")
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    assert [line for line in output.splitlines() if "ClickHouse at 127.0.0.1:1 is unreachable" in line]


@pytest.mark.parametrize("args", [("check",), ("seed_logs", "any-fractal", "--rows", "10")])
def test_redis_down_fails_in_one_line_naming_redis_and_its_address(args):
    result = run_manage(*args, STRIX_REDIS_URL="redis://127.0.0.1:1/0")
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    assert [line for line in output.splitlines() if "Redis at 127.0.0.1:1 is unreachable" in line]


@pytest.mark.parametrize("bad_key", ["not-base64!!", "c2hvcnQ="])
@pytest.mark.parametrize("args", [("check",), ("seed_logs", "any-fractal", "--rows", "10")])
def test_malformed_encryption_key_fails_in_one_line_without_echoing_the_key(args, bad_key):
    result = run_manage(*args, STRIX_BACKUP_ENCRYPTION_KEY=bad_key)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    assert "STRIX_BACKUP_ENCRYPTION_KEY" in output
    assert bad_key not in output


def test_archive_dir_not_writable_is_reported(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setattr(
        settings,
        "STORAGES",
        {
            **settings.STORAGES,
            "archives": {**settings.STORAGES["archives"], "OPTIONS": {"location": str(blocker / "archives")}},
        },
    )
    errors = checks.check_storage()
    assert [e.id for e in errors] == ["strix.E004"]


def test_seed_logs_inserts_the_requested_rows(make_fractal):
    fractal = make_fractal()
    call_command("seed_logs", fractal.name, rows=1234, days=3, seed=7)
    assert logstore.count_rows(str(fractal.id)) == 1234


def test_seed_logs_names_a_missing_fractal(db):
    with pytest.raises(CommandError, match="no fractal is named"):
        call_command("seed_logs", "no-such-fractal", rows=1)
