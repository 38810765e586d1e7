"""The fractal Manage page in the admin: actions go through the services, scoped to the user."""

import pytest
from django.urls import reverse

from archives.models import Archive, RestoreJob
from strix import logstore
from tests.celery_worker import wait_for_job

pytestmark = pytest.mark.django_db(transaction=True)


def manage_url(fractal):
    return reverse("admin:fractals_fractal_manage", args=[fractal.pk])


def test_manage_page_archives_restores_and_deletes_through_a_worker(
    client, celery_worker, make_user, make_fractal, seed_rows
):
    source, target = make_fractal("page-source"), make_fractal("page-target")
    seed_rows(source, 2_000)
    client.force_login(make_user(administers=[source, target]))

    page = client.get(manage_url(source))
    assert page.status_code == 200 and b"2,000" in page.content and b"Archive now" in page.content

    client.post(manage_url(source), {"action": "archive"})
    archive = wait_for_job(Archive.objects.get(fractal=source))
    assert archive.status == Archive.Status.COMPLETED
    status = client.get(reverse("admin:fractals_fractal_manage_status", args=[source.pk])).json()
    assert status["jobs"][0]["status"] == "completed" and status["busy"] is False

    client.post(manage_url(source), {"action": "restore", "archive": archive.pk, "target": target.pk, "mode": "append"})
    job = wait_for_job(RestoreJob.objects.get(target=target))
    assert job.status == RestoreJob.Status.COMPLETED
    assert logstore.count_rows(str(target.id)) == 2_000

    client.post(manage_url(source), {"action": "delete", "archive": archive.pk})
    assert not Archive.objects.filter(pk=archive.pk).exists()


def test_manage_page_of_a_fractal_not_administered_is_not_found(client, make_user, make_fractal):
    mine, theirs = make_fractal(), make_fractal()
    client.force_login(make_user(administers=[mine]))
    assert client.get(manage_url(theirs)).status_code == 404
    assert client.post(manage_url(theirs), {"action": "archive"}).status_code == 404
    assert not Archive.objects.exists()


def test_restore_into_a_fractal_not_administered_is_refused(client, make_user, make_fractal):
    mine, theirs = make_fractal(), make_fractal()
    archive = Archive.objects.create(fractal=mine, status=Archive.Status.COMPLETED, row_count=0)
    client.force_login(make_user(administers=[mine]))
    response = client.post(manage_url(mine), {"action": "restore", "archive": archive.pk, "target": theirs.pk})
    assert response.status_code == 404
    assert not RestoreJob.objects.exists()


def test_busy_fractal_shows_the_busy_message(client, make_user, make_fractal):
    from archives import services

    fractal = make_fractal("busy-page")
    services.request_archive(None, fractal, enqueue=False)
    client.force_login(make_user(superuser=True))
    response = client.post(manage_url(fractal), {"action": "archive"}, follow=True)
    shown = [str(m) for m in response.context["messages"]]
    assert shown == ["an archive or restore is already running for fractal busy-page"]
    assert Archive.objects.count() == 1


def test_the_fractal_page_links_to_its_manage_page(client, make_user, make_fractal):
    fractal = make_fractal()
    client.force_login(make_user(administers=[fractal]))
    page = client.get(reverse("admin:fractals_fractal_change", args=[fractal.pk]))
    assert manage_url(fractal).encode() in page.content
