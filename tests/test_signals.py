"""/healthz, /readyz and /metrics, and alerts once per incident (real services; the stopped services are
real processes stopped: a Redis and an S3 server of the test's own, and the shared ClickHouse frozen
with SIGSTOP for a few seconds)."""

import json
import os
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask
from prometheus_client.parser import text_string_to_metric_families

from archives import services
from archives.models import AlertIncident, Archive
from archives.services import alerts
from backups.naming import backup_name
from strix.envconfig import storage_backends
from tests.jobs import archive_in_process
from tests.s3server import S3Server, free_port

pytestmark = pytest.mark.django_db(transaction=True)


TOKEN = "readyz-token-for-tests"


def components(client) -> tuple[int, dict]:
    """/readyz with the token (its details), the worker ping asked afresh (not another test's, cached)."""
    from django.conf import settings

    from strix import health

    health._last_ping = None
    settings.STRIX_METRICS_TOKEN = TOKEN
    response = client.get("/readyz", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    lines = [json.loads(line) for line in response.content.decode().splitlines()]
    return response.status_code, {line["component"]: line for line in lines}


@pytest.fixture
def beat_ran_now():
    every = IntervalSchedule.objects.create(every=300, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.update_or_create(
        name="scan-archive-schedules",
        defaults={"task": "strix.scan_archive_schedules", "interval": every, "last_run_at": timezone.now()},
    )


@pytest.fixture
def own_redis(settings):
    port = free_port()
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    settings.STRIX_REDIS_URL = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True).stdout.strip() != b"PONG":
        assert time.monotonic() < deadline, "the test's Redis did not start"
        time.sleep(0.1)
    yield process
    process.kill()
    process.wait()


@pytest.fixture
def own_s3(settings, tmp_path):
    server = S3Server()
    server.client().create_bucket(Bucket="readyz")
    settings.STORAGES = {
        **settings.STORAGES,
        **storage_backends(server.settings_for("readyz"), tmp_path, tmp_path / "b"),
    }
    yield server
    server.stop()


def test_healthz_answers_while_the_process_is_up(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and json.loads(response.content)["ok"] is True


def test_readyz_names_each_stopped_service_within_one_check(celery_worker, client, beat_ran_now, own_redis, own_s3):
    status, found = components(client)
    assert status == 200, found
    assert set(found) == {
        "postgresql", "redis", "clickhouse", "archive storage", "backup storage", "encryption key", "beat", "worker",
    }  # fmt: skip

    own_redis.kill()
    own_redis.wait()
    status, found = components(client)
    assert status == 503 and not found["redis"]["ok"] and "unreachable" in found["redis"]["detail"]
    assert [name for name, c in found.items() if not c["ok"]] == ["redis"]

    own_s3.stop()
    status, found = components(client)
    assert status == 503 and not found["archive storage"]["ok"] and "unreachable" in found["archive storage"]["detail"]

    clickhouse = int(
        subprocess.run(["pgrep", "-o", "clickhouse-serv"], capture_output=True, text=True).stdout.split()[0]
    )
    os.kill(clickhouse, signal.SIGSTOP)
    try:
        started = time.monotonic()
        status, found = components(client)
        took = time.monotonic() - started
    finally:
        os.kill(clickhouse, signal.SIGCONT)
    assert status == 503 and not found["clickhouse"]["ok"] and took < 6, (took, found["clickhouse"])


def test_readyz_says_when_beat_has_not_run_for_ten_minutes(client, beat_ran_now):
    PeriodicTask.objects.filter(name="scan-archive-schedules").update(
        last_run_at=timezone.now() - timedelta(minutes=11)
    )
    _, found = components(client)
    assert not found["beat"]["ok"] and "start celery beat" in found["beat"]["detail"]


def test_metrics_parse_and_carry_the_last_archive_and_backup(client, admin, make_fractal, seed_rows, settings):
    fractal = make_fractal()
    seed_rows(fractal, 500, days=1, seed=91)
    archive = archive_in_process(admin, fractal)
    settings.STRIX_METRICS_TOKEN = TOKEN
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    families = {f.name: f for f in text_string_to_metric_families(response.content.decode())}
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples}
    assert samples[("strix_archive_last_completed_timestamp_seconds", (("fractal", fractal.name),))] == pytest.approx(
        archive.finished_at.timestamp()
    )
    assert ("strix_job_rows_total", (("kind", "archive"),)) in samples
    assert "strix_backup_last_completed_timestamp_seconds" in families
    settings.STRIX_METRICS_TOKEN = "s3cret-token"
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-token").status_code == 200


def test_a_failed_archive_and_a_stale_backup_each_alert_exactly_once(
    webhook, admin, make_fractal, seed_rows, settings, tmp_path
):
    settings.STORAGES = {**settings.STORAGES, **storage_backends({}, tmp_path / "archives", tmp_path / "backups")}
    fractal = make_fractal()
    seed_rows(fractal, 500, days=1, seed=92)
    (tmp_path / "archives").mkdir()
    subprocess.run(["chattr", "+i", str(tmp_path / "archives")], check=True)  # even root cannot write there
    try:
        archive = services.request_archive(admin, fractal, enqueue=False)
        services.run_archive(archive.id)
    finally:
        subprocess.run(["chattr", "-i", str(tmp_path / "archives")], check=True)
    archive.refresh_from_db()
    assert archive.status == Archive.Status.FAILED
    old = backup_name(datetime.now(UTC) - timedelta(hours=30))
    (tmp_path / "backups").mkdir()
    (tmp_path / "backups" / old).write_bytes(b"STRIXDP\n")  # only its name (its time) is read

    for _ in range(3):  # three 5-minute passes
        alerts.check_alerts()
    texts = [call["text"] for call in webhook]
    assert len([t for t in texts if "archive failed" in t]) == 1
    assert len([t for t in texts if "backup stale" in t]) == 1
    assert any(fractal.name in t and archive.short_id in t for t in texts)
    body = json.dumps(webhook)
    for secret in (settings.STRIX_BACKUP_ENCRYPTION_KEY, settings.SECRET_KEY):
        assert secret not in body

    # The stale-backup incident closes when a fresh backup exists, and a later lapse is a new incident.
    (tmp_path / "backups" / backup_name()).write_bytes(b"STRIXDP\n")
    alerts.check_alerts()
    assert AlertIncident.objects.get(key="backup-stale").resolved_at is not None
    assert len(webhook) == len(texts)


def test_an_overdue_schedule_and_retention_keeping_days_are_conditions(make_fractal):
    from archives.models import ArchiveEvent
    from archives.services.history import record_event
    from strix.fractals.models import Fractal

    overdue, on_time = make_fractal(archive_schedule="daily"), make_fractal(archive_schedule="daily")
    Fractal.objects.filter(pk__in=[overdue.pk, on_time.pk]).update(created_at=timezone.now() - timedelta(days=3))
    Archive.objects.create(fractal=on_time, status=Archive.Status.COMPLETED, row_count=1)
    record_event(on_time.pk, ArchiveEvent.Action.RETENTION, "kept days", "kept 2 day(s) no archive holds: …")
    record_event(overdue.pk, ArchiveEvent.Action.RETENTION, "kept days", "kept 1 day(s) no archive holds: …")
    record_event(overdue.pk, ArchiveEvent.Action.RETENTION, "done", "deleted 1 day(s)")  # the latest run is fine
    keys = {c.key for c in alerts.current_conditions()}
    assert f"archive-overdue:{overdue.pk}" in keys and f"archive-overdue:{on_time.pk}" not in keys
    assert f"retention-kept:{on_time.pk}" in keys and f"retention-kept:{overdue.pk}" not in keys


def test_alerts_go_by_e_mail_too(settings):
    from django.core import mail

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"  # Django's own test outbox
    settings.STRIX_ALERT_EMAILS = ["soc@example.com"]
    settings.STRIX_ALERT_WEBHOOK_URL = ""
    assert alerts.notify("backup failed", "the PostgreSQL backup failed: pg_dump failed: connection refused")
    (message,) = mail.outbox
    assert message.to == ["soc@example.com"] and message.subject == "Strix Data Protection: backup failed"
    assert "connection refused" in message.body
