"""Holds: a restore's hold on its range (chosen period, until removed, release) and a legal hold on a
fractal, which refuses retention, Maximum Archives pruning and archive deletion, naming the hold."""

from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from archives import services
from archives.models import Archive, ArchiveEvent, RestoreJob
from archives.services import holds
from archives.services.retention import enforce_retention
from strix import logstore
from tests.jobs import archive_in_process

pytestmark = pytest.mark.django_db(transaction=True)

NOW = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)


def old_rows(tag, ages):
    return [(NOW - timedelta(days=a), f"{tag}-{a}", f"{tag} {a}", "{}", NOW - timedelta(days=a)) for a in ages]


def restored_with_hold(admin, make_fractal, hold_days):
    source, target = make_fractal(), make_fractal(retention_days=7)
    logstore.insert_rows(str(source.id), old_rows("old", [10.5, 11.5, 12.5]))
    archive = archive_in_process(admin, source)
    job = services.request_restore(
        admin, archive, target=target, clear_existing=False, enqueue=False, hold_days=hold_days
    )
    services.run_restore(job.id)
    job.refresh_from_db()
    assert job.status == RestoreJob.Status.COMPLETED
    return target, job


def test_a_hold_until_removed_keeps_the_range_until_released(admin, make_fractal):
    target, job = restored_with_hold(admin, make_fractal, None)
    assert job.hold_until is None and job.hold_is_active
    later = NOW + timedelta(days=400)
    result = enforce_retention(target, now=later)
    assert result.deleted_days == [] and len(result.held_days) == 3
    holds.release_restore_hold(admin, job)
    result = enforce_retention(target, now=later)
    assert len(result.deleted_days) == 3 and logstore.count_rows(str(target.id)) == 0
    assert ArchiveEvent.objects.filter(fractal=target, action="hold", outcome="hold released").exists()


def test_a_7_day_hold_ends_by_itself(admin, make_fractal):
    target, job = restored_with_hold(admin, make_fractal, 7)
    assert job.hold_until > NOW + timedelta(days=6)
    assert enforce_retention(target, now=NOW + timedelta(days=5)).deleted_days == []
    assert len(enforce_retention(target, now=job.hold_until + timedelta(hours=1)).deleted_days) == 3


def test_a_legal_hold_refuses_retention_pruning_and_deletion_naming_the_hold(admin, make_fractal):
    fractal = make_fractal(retention_days=3, max_archives=1)
    logstore.insert_rows(str(fractal.id), old_rows("evidence", [9, 10]))
    first = archive_in_process(admin, fractal)
    holds.set_legal_hold(admin, fractal, "case 2026-042")

    result = enforce_retention(fractal, now=NOW)
    assert result.legal_hold and result.deleted_days == [] and logstore.count_rows(str(fractal.id)) == 2
    second = archive_in_process(admin, fractal)  # Maximum Archives 1 would prune the first
    assert Archive.objects.filter(pk=first.pk).exists()
    with pytest.raises(holds.LegalHoldActive, match=r"under legal hold .*\(case 2026-042\)"):
        services.delete_archive(admin, second)

    holds.release_legal_hold(admin, fractal, "case closed")
    services.delete_archive(admin, second)
    assert len(enforce_retention(fractal, now=NOW).deleted_days) == 2
    outcomes = list(ArchiveEvent.objects.filter(fractal=fractal, action="hold").values_list("outcome", "user"))
    assert ("legal hold set", admin.pk) in outcomes and ("legal hold released", admin.pk) in outcomes


def test_the_manage_tab_shows_holds_and_releases_them(client, admin, make_fractal):
    target, job = restored_with_hold(admin, make_fractal, 30)
    client.force_login(admin)
    url = reverse("admin:fractals_fractal_manage", args=[target.pk])
    page = client.get(url).content.decode()
    assert job.short_id in page and f"release-hold-{job.id}" in page
    client.post(url, {"action": "legal_hold", "reason": "subpoena 17"})
    assert "Legal hold since" in client.get(url).content.decode()
    client.post(url, {"action": "release_hold", "job": job.pk})
    job.refresh_from_db()
    assert job.hold_released_at is not None and not job.hold_is_active
