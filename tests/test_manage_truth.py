"""What the Manage tab tells is what happens: Maximum Archives warnings from the rule that prunes, History
that keeps a deleted archive's id, Cancelling at once, a schedule that never shows a past time nor makes a
deleted archive twice, distinct states, and a tab that polls slowly when idle (real services)."""

from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from archives import services
from archives.models import Archive, ArchiveEvent, RestoreJob
from archives.services import holds, search_jobs
from archives.services.delete import archives_to_prune, prune_warning
from archives.services.options import RestoreOptions
from archives.services.schedule import next_due, scan_schedules
from strix import logstore
from strix.storage import get_store
from tests.celery_worker import wait_until
from tests.jobs import archive_in_process

pytestmark = pytest.mark.django_db(transaction=True)


def manage_url(fractal):
    return reverse("admin:fractals_fractal_manage", args=[fractal.pk])


def stored_files(fractal) -> set[str]:
    return {a.file_name for a in Archive.objects.filter(fractal=fractal, status=Archive.Status.COMPLETED)}


def test_lowering_maximum_archives_lists_exactly_what_the_next_archive_deletes(client, admin, make_fractal, seed_rows):
    fractal = make_fractal()
    seed_rows(fractal, 50, days=1, seed=101)
    first, second, third = (archive_in_process(admin, fractal) for _ in range(3))
    client.force_login(admin)
    page = client.post(manage_url(fractal), {"action": "schedule", "schedule": "never", "max_archives": "2"})
    listed = page.content.decode().split('class="prune-warning')[1].split("</div>")[0]
    assert page.status_code == 200 and "will delete these 2 archive(s)" in listed
    assert first.short_id in listed and second.short_id in listed and third.short_id not in listed
    client.post(
        manage_url(fractal), {"action": "schedule", "schedule": "never", "max_archives": "2", "confirm_prune": "yes"}
    )
    fractal.refresh_from_db()

    # Create Archive at the limit says what it will delete, from the same rule.
    response = client.post(manage_url(fractal), {"action": "archive"}, follow=True)
    assert f"deletes the 2 oldest: {first.short_id}" in response.content.decode()
    new = Archive.objects.filter(fractal=fractal).exclude(pk__in=[first.pk, second.pk, third.pk]).get()
    services.run_archive(new.id)  # here, unless a worker of the test session has taken it already

    def completed():
        new.refresh_from_db()
        return new.status == Archive.Status.COMPLETED and not Archive.objects.filter(pk=second.pk).exists()

    wait_until(completed, 60, 0.1, "the new archive and its pruning")
    remaining = set(Archive.objects.filter(fractal=fractal).values_list("pk", flat=True))
    assert remaining == {third.pk, new.pk}
    store = get_store("archives")
    for gone in (first, second):
        assert not store.exists(gone.file_name)
    # History names what was pruned, by id.
    pruned = ArchiveEvent.objects.get(fractal=fractal, action="prune")
    assert first.short_id in pruned.detail and second.short_id in pruned.detail


def test_the_settings_form_warns_what_the_next_archive_deletes(client, admin, make_fractal, seed_rows):
    fractal = make_fractal()
    seed_rows(fractal, 20, days=1, seed=102)
    archives = [archive_in_process(admin, fractal) for _ in range(3)]
    client.force_login(admin)
    change = reverse("admin:fractals_fractal_change", args=[fractal.pk])
    form = {
        "name": fractal.name, "description": "", "retention_days": "", "archive_schedule": "never",
        "max_archives": "2", "memberships-TOTAL_FORMS": "0", "memberships-INITIAL_FORMS": "0",
    }  # fmt: skip
    page = client.post(change, form, follow=True).content.decode()
    assert "the next archive deletes the 2 oldest" in page
    assert archives[0].short_id in page and archives[1].short_id in page and archives[2].short_id not in page
    holds.set_legal_hold(admin, fractal, "case 12")
    fractal.refresh_from_db()
    assert "pruning is skipped" in prune_warning(fractal)
    assert [a.pk for a in archives_to_prune(fractal, upcoming=1)] == [archives[0].pk, archives[1].pk]


def test_history_and_restores_keep_a_deleted_archives_id_range_and_searches(admin, make_fractal, seed_rows):
    source, target = make_fractal(), make_fractal()
    seed_rows(source, 100, days=2, seed=103)
    archive = archive_in_process(admin, source)
    job = services.request_restore(admin, archive, target, clear_existing=False, enqueue=False)
    services.run_restore(job.id)
    search = search_jobs.request_search(admin, archive, RestoreOptions(), enqueue=False)
    search_jobs.run_search(search.pk)
    services.delete_archive(admin, archive)

    detail = ArchiveEvent.objects.get(fractal=source, action="delete").detail
    assert archive.short_id in detail and "None" not in detail and "with its 1 search(es)" in detail
    assert f"{archive.time_start:%Y-%m-%d %H:%M}" in detail
    job.refresh_from_db()
    assert job.archive is None and job.archive_short_id == archive.short_id and job.source_fractal_id == source.pk
    from django.test import RequestFactory

    from archives.admin_views import _restores

    request = RequestFactory().get("/")
    request.user = admin
    assert [j.pk for j in _restores(request, source)] == [job.pk]  # still on the source's Restores table


def test_cancel_shows_cancelling_at_once_and_a_late_cancel_says_so(client, admin, make_fractal, seed_rows):
    fractal = make_fractal()
    seed_rows(fractal, 20, days=1, seed=104)
    archive = services.request_archive(admin, fractal, enqueue=False)
    Archive.objects.filter(pk=archive.pk).update(status=Archive.Status.ARCHIVING)  # a worker has it
    client.force_login(admin)
    client.post(manage_url(fractal), {"action": "cancel", "job": archive.pk})
    status = client.get(reverse("admin:fractals_fractal_manage_status", args=[fractal.pk])).json()
    [row] = [job for job in status["jobs"] if job["id"] == str(archive.pk)]
    assert row["label"] == "Cancelling…"
    assert "Cancelling…" in status["archives_html"]

    done = archive_in_process(admin, make_fractal())
    with pytest.raises(services.NotCancellable, match="had already ended \\(Completed\\); nothing was cancelled"):
        services.cancel_job(admin, done)


def test_the_next_scheduled_archive_is_never_in_the_past_and_a_deleted_one_is_not_made_again(
    admin, make_fractal, seed_rows
):
    fractal = make_fractal(archive_schedule="daily")
    seed_rows(fractal, 20, days=1, seed=105)
    now = datetime.now(UTC)
    assert next_due(fractal, now) >= now  # due now: the next scan, not a time already past
    [made] = scan_schedules(now)
    services.run_archive(made.id)  # here, unless the session's worker took it: then wait for it
    wait_until(lambda: Archive.objects.get(pk=made.pk).status == Archive.Status.COMPLETED, 60, 0.1, "the archive")
    assert next_due(fractal, now) >= (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)

    made.refresh_from_db()
    services.delete_archive(admin, made)
    assert scan_schedules(now + timedelta(minutes=5)) == []  # the day's scheduled archive was made
    assert scan_schedules(now + timedelta(days=1)) != []  # the next day's is


def test_damaged_verified_and_held_archives_say_so_before_any_click(client, admin, make_fractal, seed_rows):
    fractal = make_fractal()
    seed_rows(fractal, 20, days=1, seed=106)
    damaged, verified = archive_in_process(admin, fractal), archive_in_process(admin, fractal)
    Archive.objects.filter(pk=damaged.pk).update(verification="damaged", damage="chunk 3 failed authentication")
    Archive.objects.filter(pk=verified.pk).update(verification="verified", verified_at=datetime.now(UTC))
    holds.set_legal_hold(admin, fractal, "case 77")
    client.force_login(admin)
    html = client.get(reverse("admin:fractals_fractal_manage_status", args=[fractal.pk])).json()["archives_html"]
    assert ">Damaged<" in html and ">Verified<" in html
    assert "disabled: damaged" in html  # its Restore, with the reason
    assert html.count("Disabled: the fractal is under legal hold (case 77)") >= 2  # each Delete, with why
    operations = client.get(reverse("admin:archives_operations")).content.decode()
    assert ">Damaged<" in operations and ">Verified<" in operations
    assert reverse("admin:archives_operations") in client.get("/admin/").content.decode()  # in the sidebar


def test_an_idle_tab_is_answered_304_and_told_to_poll_slowly(client, admin, make_fractal, seed_rows):
    fractal = make_fractal()
    seed_rows(fractal, 20, days=1, seed=107)
    archive_in_process(admin, fractal)
    client.force_login(admin)
    url = reverse("admin:fractals_fractal_manage_status", args=[fractal.pk])
    first = client.get(url)
    assert first.json()["active"] is False and first.json()["row_count"] == "20"
    assert client.get(url, HTTP_IF_NONE_MATCH=first["ETag"]).status_code == 304
    logstore.insert_rows(str(fractal.id), [(datetime.now(UTC), "x", "late", "{}", datetime.now(UTC))])
    changed = client.get(url, HTTP_IF_NONE_MATCH=first["ETag"])
    assert changed.status_code == 200 and changed.json()["row_count"] == "21"  # the header refreshes too


def test_a_range_restore_expects_the_rows_of_its_range(admin, make_fractal, seed_rows):
    fractal = make_fractal()
    now = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    seed_rows(fractal, 3_000, days=10, seed=108, now=now)
    archive = archive_in_process(admin, fractal)
    day = now - timedelta(days=3)
    options = RestoreOptions(day, day + timedelta(days=1))
    job = services.request_restore(admin, archive, make_fractal(), clear_existing=False, enqueue=False, options=options)
    assert job.expected_rows == logstore.count_rows(str(fractal.id), day, day + timedelta(days=1)) < 3_000
    services.run_restore(job.id)
    job.refresh_from_db()
    assert job.status == RestoreJob.Status.COMPLETED and job.progress_rows == job.rows_restored
