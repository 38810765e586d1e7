"""strix-setup driving a Docker Compose install from the host. `docker` is the stand-in in
tests/docker_standin (a real Docker run is not part of CI): it records every argv and runs each
`compose exec` command against this machine's PostgreSQL, as the app container would."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection
from dotenv import dotenv_values

from strix.fractals.models import Fractal
from tests.test_backups import _subprocess_env, snapshot

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parent.parent
SETUP = Path(sys.executable).with_name("strix-setup")
STACK = "postgres,redis,clickhouse,web,worker,beat,flower"


@pytest.fixture
def compose_install(tmp_path):
    install = tmp_path / "opt-strix"
    result = subprocess.run(
        [SETUP, "--install", "--dir", install], capture_output=True, text=True, env=_subprocess_env()
    )
    assert result.returncode == 0, result.stderr
    app = tmp_path / "container-app"  # the app container's /app: its backups/ is the bind mount
    app.mkdir()
    (app / "backups").symlink_to(install / "backups")
    return install, app, result.stdout


def setup(install, app, log, *args, running=STACK):
    env = {
        **_subprocess_env(),
        "PATH": f"{ROOT / 'tests' / 'docker_standin'}:{SETUP.parent}:{os.environ['PATH']}",
        "STANDIN_LOG": str(log),
        "STANDIN_RUNNING": running,
        "STANDIN_APP_DIR": str(app),
    }
    return subprocess.run(
        [SETUP, *args, "--dir", install], capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL
    )


def calls(log) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_install_prepares_a_compose_install_completely(compose_install):
    install, _, out = compose_install
    env = dotenv_values(install / ".env")
    assert env["STRIX_INSTALL_KIND"] == "compose" and env["STRIX_FLOWER_PASSWORD"] and env["STRIX_POSTGRES_PASSWORD"]
    assert env["STRIX_SOURCE_DIR"] == str(ROOT)
    assert (install / ".env").stat().st_mode & 0o777 == 0o600
    assert (install / "docker-compose.yml").read_bytes() == (ROOT / "docker-compose.yml").read_bytes()
    assert (install / "backups").stat().st_mode & 0o777 == 0o700
    assert f"cd {install} && docker compose up -d --build" in out
    assert "docker compose run --rm web python manage.py createsuperuser" in out


def test_backup_list_verify_and_restore_run_inside_the_stack(compose_install, tmp_path):
    install, app, _ = compose_install
    log = tmp_path / "docker-argv.jsonl"
    backup = setup(install, app, log, "--backup", "--non-interactive", "--keep-daily", "7")
    assert backup.returncode == 0, backup.stderr
    name = backup.stdout.strip().splitlines()[-1].rsplit(" ", 1)[-1]
    compose = ["compose", "--project-directory", str(install), "-f", str(install / "docker-compose.yml")]
    assert calls(log) == [
        [*compose, "ps", "--status", "running", "--services"],
        [*compose, "exec", "-T", "web", "strix-setup", "--backup", "--non-interactive", "--keep-daily", "7",
         "--dir", "/app"],
    ]  # fmt: skip
    assert (install / "backups" / name).stat().st_mode & 0o777 == 0o600

    listing = setup(install, app, log, "--list-backups")
    assert listing.returncode == 0 and name in listing.stdout
    verify = setup(install, app, log, "--verify-backup", str(install / "backups" / name))
    assert verify.returncode == 0 and "genuine" in verify.stdout, verify.stderr
    assert calls(log)[-1][-4:] == ["--verify-backup", name, "--dir", "/app"]

    before = snapshot()
    Fractal.objects.create(name="made-after-the-compose-backup")
    restore = setup(install, app, log, "--restore", "--restore-file", name, "--non-interactive")
    assert restore.returncode == 0, restore.stderr
    connection.close()
    assert snapshot() == before
    assert "safety backup strix-backup-" in restore.stdout.strip().splitlines()[-1]


def test_a_stopped_stack_is_one_line_naming_the_service_and_how_to_start_it(compose_install, tmp_path):
    install, app, _ = compose_install
    log = tmp_path / "docker-argv.jsonl"
    result = setup(install, app, log, "--backup", "--non-interactive", running="redis,clickhouse")
    assert result.returncode == 1 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "service postgres" in lines[0] and "is not running" in lines[0]
    assert f"cd {install} && docker compose up -d" in lines[0]
    assert not any((install / "backups").iterdir())
    assert all(call[5] == "ps" for call in calls(log))  # nothing was run inside a container


def test_a_file_outside_the_backups_directory_is_refused_with_what_to_do(compose_install, tmp_path):
    install, app, _ = compose_install
    stray = tmp_path / "elsewhere.strix-backup"
    stray.write_bytes(b"x")
    result = setup(install, app, tmp_path / "log", "--restore", "--restore-file", str(stray), "--non-interactive")
    assert result.returncode == 1 and "copy it there first" in result.stderr


def test_the_compose_file_bind_mounts_backups_and_asks_flower_for_a_login():
    import yaml

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for service in ("web", "worker", "beat", "flower", "migrate"):
        assert "./backups:/app/backups" in compose["services"][service]["volumes"]
    assert "FLOWER_BASIC_AUTH" in " ".join(compose["services"]["flower"]["command"])
    assert {"postgres", "web"} <= set(compose["services"])
