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


def held_fractal_with_rows(admin, make_fractal, **fields):
    fractal = make_fractal(**fields)
    logstore.insert_rows(str(fractal.id), old_rows("evidence", [1, 2, 3, 4]))
    holds.set_legal_hold(admin, fractal, "case 2026-099")
    return fractal


def test_a_legal_hold_refuses_a_replace_restore_and_lets_an_append_run(admin, make_fractal):
    source = make_fractal()
    logstore.insert_rows(str(source.id), old_rows("src", [5, 6]))
    archive = archive_in_process(admin, source)
    target = held_fractal_with_rows(admin, make_fractal)
    before = logstore.fractal_checksum(str(target.id))
    with pytest.raises(holds.LegalHoldActive, match=r"replacing the logs of fractal .* legal hold .*case 2026-099"):
        services.request_restore(admin, archive, target=target, clear_existing=True, enqueue=False)
    assert not RestoreJob.objects.filter(target=target).exists()
    assert logstore.fractal_checksum(str(target.id)) == before

    # A hold set after the replace-restore was queued stops it before anything of the target is touched.
    other = make_fractal()
    logstore.insert_rows(str(other.id), old_rows("other", [1, 2, 3]))
    other_before = logstore.fractal_checksum(str(other.id))
    job = services.request_restore(admin, archive, target=other, clear_existing=True, enqueue=False)
    holds.set_legal_hold(admin, other, "late subpoena")
    services.run_restore(job.id)
    job.refresh_from_db()
    assert job.status == RestoreJob.Status.FAILED and "late subpoena" in job.error
    assert logstore.fractal_checksum(str(other.id)) == other_before

    appended = services.request_restore(admin, archive, target=target, clear_existing=False, enqueue=False)
    services.run_restore(appended.id)
    appended.refresh_from_db()
    assert appended.status == RestoreJob.Status.COMPLETED and logstore.count_rows(str(target.id)) == 4 + 2


def test_a_legal_hold_refuses_pruning_with_a_history_line(admin, make_fractal):
    fractal = make_fractal(max_archives=1)
    logstore.insert_rows(str(fractal.id), old_rows("e", [1]))
    first = archive_in_process(admin, fractal)
    holds.set_legal_hold(admin, fractal, "case 7")
    archive_in_process(admin, fractal)
    assert Archive.objects.filter(pk=first.pk).exists()
    event = ArchiveEvent.objects.get(fractal=fractal, action="prune")
    assert event.outcome == "skipped" and "legal hold (case 7)" in event.detail


def test_a_fractal_under_legal_hold_cannot_be_deleted_from_its_page_or_in_bulk(client, admin, make_fractal, make_user):
    fractal = held_fractal_with_rows(admin, make_fractal)
    before = logstore.fractal_checksum(str(fractal.id))
    client.force_login(make_user(administers=[fractal]))
    delete_url = reverse("admin:fractals_fractal_delete", args=[fractal.pk])
    page = client.get(delete_url).content.decode()
    assert "legal hold" in page and "case 2026-099" in page
    client.post(delete_url, {"post": "yes"})
    changelist = reverse("admin:fractals_fractal_changelist")
    page = client.post(
        changelist, {"action": "delete_selected", "_selected_action": [fractal.pk], "post": "yes"}, follow=True
    ).content.decode()
    assert "legal hold" in page
    fractal.refresh_from_db()  # still there, with its hold, History and rows
    assert holds.active_legal_hold(fractal.pk) is not None
    assert ArchiveEvent.objects.filter(fractal=fractal, outcome="legal hold set").exists()
    assert logstore.fractal_checksum(str(fractal.id)) == before


def test_deleting_a_fractal_deletes_its_log_rows_under_its_claim(client, admin, make_fractal, make_user):
    from strix.fractals.models import Fractal

    doomed, bystander = make_fractal(), make_fractal()
    logstore.insert_rows(str(doomed.id), old_rows("gone", [1, 2, 3]))
    logstore.insert_rows(str(bystander.id), old_rows("stays", [1, 2]))
    client.force_login(make_user(administers=[doomed]))
    delete_url = reverse("admin:fractals_fractal_delete", args=[doomed.pk])
    assert "3 log rows of fractal" in client.get(delete_url).content.decode()
    client.post(delete_url, {"post": "yes"})
    assert not Fractal.objects.filter(pk=doomed.pk).exists()
    assert logstore.count_rows(str(doomed.id)) == 0 and logstore.count_rows(str(bystander.id)) == 2
