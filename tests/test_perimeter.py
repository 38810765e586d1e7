"""The perimeter, tried as an attacker would: throttled logins, password rules, the HTTPS switch under
`check --deploy`, closed monitoring endpoints, and a debug page without secrets (real PostgreSQL)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.test import Client, RequestFactory

ROOT = Path(__file__).resolve().parent.parent
LOGIN = "/admin/login/?next=/admin/"


def try_login(client: Client, username: str, password: str):
    return client.post(LOGIN, {"username": username, "password": password, "next": "/admin/"})


@pytest.fixture
def counted_password_checks(monkeypatch):
    """How many times a password was actually checked against the database's hash."""
    from django.contrib.auth.backends import ModelBackend

    calls = []
    original = ModelBackend.authenticate

    def counting(self, request, username=None, password=None, **kwargs):
        calls.append(username)
        return original(self, request, username=username, password=password, **kwargs)

    monkeypatch.setattr(ModelBackend, "authenticate", counting)
    return calls


def test_the_sixth_wrong_password_is_refused_unchecked_and_locks_the_right_one_out_until_unlocked(
    db, make_user, counted_password_checks
):
    from axes.utils import reset

    user = make_user(password="a-long-enough-passphrase")
    client = Client()
    for _ in range(4):
        assert try_login(client, user.username, "wrong").status_code == 200  # the form, with its error
    assert try_login(client, user.username, "wrong").status_code == 429  # the 5th failure locks out
    assert len(counted_password_checks) == 5
    locked = try_login(client, user.username, "wrong")
    assert locked.status_code == 429 and len(counted_password_checks) == 5  # refused without checking it
    assert try_login(client, user.username, "a-long-enough-passphrase").status_code == 429
    assert len(counted_password_checks) == 5
    # Another address is not locked out for this user (user and address together are throttled).
    other = Client(REMOTE_ADDR="10.9.8.7")
    assert try_login(other, user.username, "a-long-enough-passphrase").status_code == 302

    reset(username=user.username)  # what an admin's unlock (Axes' access attempts, deleted) does
    assert try_login(client, user.username, "a-long-enough-passphrase").status_code == 302


def test_a_lockout_ends_after_its_cool_down(db, make_user, settings):
    from datetime import timedelta

    from axes.models import AccessAttempt

    user = make_user(password="a-long-enough-passphrase")
    client = Client()
    for _ in range(5):
        try_login(client, user.username, "wrong")
    assert try_login(client, user.username, "a-long-enough-passphrase").status_code == 429
    # 15 minutes pass: the attempts are older than the cool-down.
    AccessAttempt.objects.update(attempt_time=AccessAttempt.objects.first().attempt_time - timedelta(minutes=16))
    assert try_login(client, user.username, "a-long-enough-passphrase").status_code == 302


@pytest.mark.parametrize("password", ["a", "password123", "123456789012", "strixadmin-user"])
def test_weak_passwords_are_refused(db, make_user, password):
    user = make_user(username="strixadmin-user")
    with pytest.raises(ValidationError):
        validate_password(password, user)
    validate_password("correct horse battery staple", user)


def _deploy_check(**env) -> subprocess.CompletedProcess:
    environment = {
        **os.environ,
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": "k" + os.urandom(40).hex(),
        "DJANGO_ALLOWED_HOSTS": "strix.example.org",
        **env,
    }
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_with_the_https_switch_and_warns_without_it():
    clean = _deploy_check(STRIX_HTTPS="1", STRIX_TRUSTED_PROXY_HEADER="X-Forwarded-Proto")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "security.W" not in clean.stdout + clean.stderr
    plain = _deploy_check(STRIX_HTTPS="0")
    assert plain.returncode != 0 and "security.W004" in plain.stdout + plain.stderr


def test_metrics_needs_its_token_whatever_the_header_holds(db, client, settings):
    settings.STRIX_METRICS_TOKEN = "t0ken-for-tests"
    for header in (None, "Bearer wrong", "Bearer t0ken-for-tests-but-longer", "Bearer tökén", "Basic abc"):
        extra = {} if header is None else {"HTTP_AUTHORIZATION": header}
        assert client.get("/metrics", **extra).status_code == 401, header
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer t0ken-for-tests")
    assert response.status_code == 200 and b"strix_" in response.content
    settings.STRIX_METRICS_TOKEN = ""  # an install without a token serves no metrics at all
    assert client.get("/metrics").status_code == 401


def test_anonymous_readyz_names_only_components_and_the_token_gets_details(db, client, settings):
    from django.db import connection

    settings.STRIX_METRICS_TOKEN = "t0ken-for-tests"
    response = client.get("/readyz")
    body = response.content.decode()
    cfg = settings.STRIX_CLICKHOUSE
    secrets = [
        connection.settings_dict["NAME"],
        f"{cfg['host']}:{cfg['port']}",
        "6379",
        str(settings.STRIX_ARCHIVE_DIR),
        str(settings.STRIX_BACKUP_DIR),
        "key id",
    ]
    assert response.status_code in (200, 503)
    assert not [s for s in secrets if s in body], body
    assert '"component": "postgresql"' in body
    detailed = client.get("/readyz", HTTP_AUTHORIZATION="Bearer t0ken-for-tests").content.decode()
    assert connection.settings_dict["NAME"] in detailed and "key id" in detailed


# As a .env would hold them; module-level, so that no frame of the forced error holds them itself.
SECRET_VALUES = {
    "DATABASE_URL": "postgresql://strix:db-pass-3141@db:5432/strix",
    "STRIX_REDIS_URL": "redis://:redis-pass-2718@redis:6379/0",
    "STRIX_CLICKHOUSE_URL": "clickhouse://default:ch-pass-1618@clickhouse:9000/",
    "STRIX_S3_SECRET_KEY": "s3-secret-1414",
    "STRIX_FLOWER_PASSWORD": "flower-pass-1732",
    "STRIX_METRICS_TOKEN": "metrics-token-2236",
}


def test_a_debug_500_page_shows_no_secret_from_the_environment(settings):
    from django.views.debug import technical_500_response

    settings.DEBUG = True
    settings.STRIX_REDIS_URL = settings.CELERY_BROKER_URL = SECRET_VALUES["STRIX_REDIS_URL"]
    settings.STRIX_METRICS_TOKEN = SECRET_VALUES["STRIX_METRICS_TOKEN"]
    request = RequestFactory().get("/admin/", **SECRET_VALUES)  # as runserver passes the environment on
    try:
        raise RuntimeError("forced")
    except RuntimeError:
        page = technical_500_response(request, *sys.exc_info()).content.decode()
    assert "forced" in page and "DATABASE_URL" in page  # the page is the real one; only values are hidden
    leaked = [name for name, value in SECRET_VALUES.items() if value.split("@")[0][-8:] in page]
    assert not leaked, leaked


def test_flower_as_make_demo_runs_it_refuses_without_its_login(tmp_path):
    import base64
    import socket
    import time
    import urllib.error
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    line = next(x for x in (ROOT / "Procfile").read_text().splitlines() if x.startswith("flower:"))
    command = line.split(":", 1)[1].replace("--port=5555", f"--port={port}")
    env = {**os.environ, "STRIX_FLOWER_USER": "operator", "STRIX_FLOWER_PASSWORD": "flower-pass-for-tests"}
    log = open(tmp_path / "flower.log", "wb")
    process = subprocess.Popen(["bash", "-c", command], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"

    def status(headers=None) -> int:
        try:
            return urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=5).status
        except urllib.error.HTTPError as e:
            return e.code

    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                first = status()
                break
            except OSError:
                assert time.monotonic() < deadline, (tmp_path / "flower.log").read_text()[-2000:]
                time.sleep(0.5)
        assert first == 401
        wrong = base64.b64encode(b"operator:wrong").decode()
        assert status({"Authorization": f"Basic {wrong}"}) == 401
        right = base64.b64encode(b"operator:flower-pass-for-tests").decode()
        assert status({"Authorization": f"Basic {right}"}) == 200
    finally:
        process.terminate()
        process.wait(timeout=20)
