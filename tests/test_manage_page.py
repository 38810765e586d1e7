"""The fractal's Manage tab in the admin: actions go through the services, scoped to the user."""

import pytest
from django.urls import reverse

from archives import services
from archives.models import Archive, ArchiveEvent, RestoreJob
from strix import logstore
from tests.celery_worker import wait_for_job
from tests.jobs import archive_in_process

pytestmark = pytest.mark.django_db(transaction=True)


def manage_url(fractal):
    return reverse("admin:fractals_fractal_manage", args=[fractal.pk])


def restore_url(archive):
    return reverse("admin:fractals_fractal_restore", args=[archive.fractal_id, archive.pk])


def test_manage_tab_archives_restores_and_deletes_through_a_worker(
    client, celery_worker, make_user, make_fractal, seed_rows
):
    source, target = make_fractal("page-source"), make_fractal("page-target")
    seed_rows(source, 2_000)
    client.force_login(make_user(administers=[source, target]))

    page = client.get(manage_url(source))
    assert page.status_code == 200 and b"2,000" in page.content and b"Create Archive" in page.content
    for section in (b">Archives<", b">Archive Schedule<", b">Restores<", b">History<"):
        assert section in page.content

    client.post(manage_url(source), {"action": "archive"})
    archive = wait_for_job(Archive.objects.get(fractal=source))
    assert archive.status == Archive.Status.COMPLETED
    status = client.get(reverse("admin:fractals_fractal_manage_status", args=[source.pk])).json()
    assert status["jobs"][0]["status"] == "completed" and status["busy"] is False
    assert "Manual" in status["archives_html"] and archive.short_id in status["archives_html"]

    step = client.get(restore_url(archive))
    assert step.context["plan"].target == source and step.context["plan"].clear_existing  # the defaults
    client.post(restore_url(archive), {"target": target.pk})  # "Clear existing logs" unchecked: append
    job = wait_for_job(RestoreJob.objects.get(target=target))
    assert job.status == RestoreJob.Status.COMPLETED and not job.clear_existing
    assert logstore.count_rows(str(target.id)) == 2_000
    assert job.short_id.encode() in client.get(manage_url(source)).content  # shown on the source's tab
    assert job.short_id.encode() in client.get(manage_url(target)).content  # and on the target's

    client.post(manage_url(source), {"action": "delete", "archive": archive.pk})
    assert not Archive.objects.filter(pk=archive.pk).exists()
    actions = set(ArchiveEvent.objects.filter(fractal=source).values_list("action", "outcome"))
    assert {
        ("archive", "requested"),
        ("archive", "completed"),
        ("restore", "requested"),
        ("delete", "deleted"),
    } <= actions


def test_the_restore_step_summarises_a_replace_and_asks_for_the_targets_name(
    client, make_user, make_fractal, seed_rows
):
    source, target = make_fractal("sum-source"), make_fractal("sum-target")
    seed_rows(source, 300, seed=1)
    seed_rows(target, 200, seed=2)
    user = make_user(administers=[source, target])
    archive = archive_in_process(user, source)
    client.force_login(user)

    summary = client.get(
        reverse("admin:fractals_fractal_restore_summary", args=[source.pk, archive.pk]),
        {"target": target.pk, "clear_existing": "on"},
    ).json()
    assert (
        summary["summary"].startswith("Will delete 200 rows (")
        and "of fractal sum-target, then insert 300" in summary["summary"]
    )
    assert summary["needs_typed_name"] is True

    page = client.post(restore_url(archive), {"target": target.pk, "clear_existing": "on", "confirm_name": "wrong"})
    assert b"Type the name of fractal sum-target" in page.content
    assert not RestoreJob.objects.exists()  # nothing sent without the name
    client.post(restore_url(archive), {"target": target.pk, "clear_existing": "on", "confirm_name": "sum-target"})
    assert RestoreJob.objects.get().clear_existing


def test_lowering_maximum_archives_shows_what_it_would_delete_and_asks_first(client, make_user, make_fractal):
    fractal = make_fractal("prune-page")
    user = make_user(administers=[fractal])
    made = [archive_in_process(user, fractal) for _ in range(3)]
    client.force_login(user)

    page = client.post(manage_url(fractal), {"action": "schedule", "schedule": "daily", "max_archives": "1"})
    # Maximum Archives 1 keeps only the next archive: all three existing ones go when it completes.
    assert page.status_code == 200 and [a.pk for a in page.context["pending_prune"]] == [a.pk for a in made]
    fractal.refresh_from_db()
    assert fractal.max_archives is None  # not saved yet
    client.post(
        manage_url(fractal), {"action": "schedule", "schedule": "daily", "max_archives": "1", "confirm_prune": "yes"}
    )
    fractal.refresh_from_db()
    assert (fractal.archive_schedule, fractal.max_archives) == ("daily", 1)
    assert ArchiveEvent.objects.filter(fractal=fractal, action="schedule").exists()


def test_a_user_administering_only_a_gets_404_for_everything_of_b_and_never_sees_its_name(
    client, make_user, make_fractal
):
    mine, theirs = make_fractal("scope-mine"), make_fractal("scope-theirs-secret")
    theirs_archive = archive_in_process(None, theirs)
    client.force_login(make_user(administers=[mine]))
    assert client.get(manage_url(theirs)).status_code == 404
    assert client.get(reverse("admin:fractals_fractal_manage_status", args=[theirs.pk])).status_code == 404
    assert client.get(restore_url(theirs_archive)).status_code == 404
    for action in ("archive", "verify", "delete", "cancel"):
        payload = {"action": action, "archive": theirs_archive.pk, "job": theirs_archive.pk}
        assert client.post(manage_url(theirs), payload).status_code == 404
    assert client.post(manage_url(mine), {"action": "verify", "archive": theirs_archive.pk}).status_code == 404
    mine_archive = archive_in_process(None, mine)
    assert client.post(restore_url(mine_archive), {"target": theirs.pk}).status_code == 404
    assert Archive.objects.filter(pk=theirs_archive.pk, verification="").exists()
    operations = reverse("admin:archives_operations")
    assert mine_archive.short_id.encode() in client.get(operations).content
    assert theirs_archive.short_id.encode() not in client.get(operations, {"fractal": theirs.pk}).content
    for url in (manage_url(mine), restore_url(mine_archive), reverse("admin:archives_archive_changelist"), operations):
        assert b"scope-theirs-secret" not in client.get(url).content


def test_busy_fractal_shows_the_busy_message(client, make_user, make_fractal):
    fractal = make_fractal("busy-page")
    services.request_archive(None, fractal, enqueue=False)
    client.force_login(make_user(superuser=True))
    response = client.post(manage_url(fractal), {"action": "archive"}, follow=True)
    shown = [str(m) for m in response.context["messages"]]
    assert shown == ["an archive or restore is already running for fractal busy-page"]
    assert Archive.objects.count() == 1
    assert b"Disabled: an archive is running for this fractal." in response.content
    done = archive_in_process(None, make_fractal("busy-elsewhere"))
    done.fractal = fractal
    done.save(update_fields=["fractal"])
    page = client.get(manage_url(fractal)).content.decode()
    assert f'id="delete-{done.id}" aria-label="Delete archive {done.short_id}" disabled' in page


def test_the_fractal_page_has_a_manage_tab(client, make_user, make_fractal):
    fractal = make_fractal()
    client.force_login(make_user(administers=[fractal]))
    page = client.get(reverse("admin:fractals_fractal_change", args=[fractal.pk]))
    assert manage_url(fractal).encode() in page.content and b">Manage</a>" in page.content


def test_the_manage_tab_shows_the_last_retention_run_and_the_days_it_kept(client, make_user, make_fractal):
    from datetime import UTC, datetime, timedelta

    from archives.services.retention import enforce_retention

    fractal = make_fractal("retention-page", retention_days=3, archive_schedule="daily")
    old = datetime.now(UTC) - timedelta(days=9)
    logstore.insert_rows(str(fractal.id), [(old, "r1", "old event", "{}", old)])
    enforce_retention(fractal)
    client.force_login(make_user(administers=[fractal]))
    page = client.get(manage_url(fractal)).content.decode()
    assert "Last retention run:" in page and "kept 1 day(s) no archive holds" in page
    assert "These days are deleted once an archive holds them" in page


def test_the_restore_step_takes_a_time_range_and_a_filter(client, make_user, make_fractal, seed_rows):
    from datetime import UTC, datetime, timedelta

    source, target = make_fractal("range-source"), make_fractal("range-target")
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    seed_rows(source, 3_000, days=3, seed=9, now=today)
    user = make_user(administers=[source, target])
    archive = archive_in_process(user, source)
    client.force_login(user)
    day = today - timedelta(days=1)
    form = {"target": target.pk, "from": f"{day:%Y-%m-%dT%H:%M}", "to": f"{today:%Y-%m-%dT%H:%M}", "contains": "sshd"}
    summary_url = reverse("admin:fractals_fractal_restore_summary", args=[source.pk, archive.pk])
    summary = client.get(summary_url, form).json()
    assert "matching the filter" in summary["summary"] and f"{day:%Y-%m-%d} 00:00:00" in summary["summary"]
    assert "is not a date and time" in client.get(summary_url, {"to": "soon"}).json()["summary"]
    client.post(restore_url(archive), form)
    job = RestoreJob.objects.get()
    assert (job.range_start, job.range_end, job.contains) == (day, today, "sshd")


def test_many_archives_and_fractals_stay_usable_pages(client, admin, make_fractal):
    from archives.admin_operations import FRACTAL_CHOICES
    from archives.admin_views import ARCHIVES_SHOWN
    from strix.fractals.models import Fractal

    fractal = make_fractal()
    Archive.objects.bulk_create(
        Archive(fractal=fractal, status=Archive.Status.COMPLETED, row_count=1) for _ in range(ARCHIVES_SHOWN + 5)
    )
    client.force_login(admin)
    page = client.get(manage_url(fractal)).content.decode()
    assert page.count('<tr data-job="') == ARCHIVES_SHOWN
    assert f"The newest {ARCHIVES_SHOWN} of {ARCHIVES_SHOWN + 5} archives are shown" in page
    everything = client.get(manage_url(fractal), {"archives": "all"}).content.decode()
    assert everything.count('<tr data-job="') == ARCHIVES_SHOWN + 5 and "archives-more" not in everything

    Fractal.objects.bulk_create(Fractal(name=f"many-{i:04d}") for i in range(FRACTAL_CHOICES))
    operations = client.get(reverse("admin:archives_operations")).content.decode()
    assert 'name="fractal_name"' in operations and "many-0001</option>" not in operations
    found = client.get(reverse("admin:archives_operations"), {"fractal_name": fractal.name}).content.decode()
    assert fractal.name in found
