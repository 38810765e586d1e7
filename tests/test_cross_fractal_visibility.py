"""A restore between two fractals shows each side's admins only what they administer: the other
fractal reads "another fractal" on the Manage tab, in its status JSON, History, Operations and the
restore-job pages, and neither its rows, its requester nor an error naming it show (real services)."""

import pytest
from django.urls import reverse

from archives import services
from archives.models import RestoreJob
from archives.services import holds
from tests.jobs import archive_in_process

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_cross_fractal_restore_never_shows_one_side_to_the_other_sides_admin(
    client, admin, make_fractal, make_user, seed_rows
):
    source, target = make_fractal("alpha-source-fractal"), make_fractal("bravo-secret-fractal")
    seed_rows(source, 300, days=2, seed=95)
    seed_rows(target, 77, days=2, seed=96)
    archive = archive_in_process(admin, source)
    restorer = make_user("restorer-superuser", superuser=True)
    completed = services.request_restore(restorer, archive, target, clear_existing=False, enqueue=False)
    services.run_restore(completed.id)
    failed = services.request_restore(restorer, archive, target, clear_existing=True, enqueue=False)
    holds.set_legal_hold(admin, target, "bravo case 5521")  # the replace then fails naming the hold
    services.run_restore(failed.id)
    failed.refresh_from_db()
    assert failed.status == RestoreJob.Status.FAILED and "bravo case 5521" in failed.error
    completed.refresh_from_db()

    def pages(fractal, jobs):
        manage = reverse("admin:fractals_fractal_manage", args=[fractal.pk])
        status = reverse("admin:fractals_fractal_manage_status", args=[fractal.pk])
        urls = [manage, status, reverse("admin:archives_operations"), reverse("admin:archives_restorejob_changelist")]
        urls += [reverse("admin:archives_restorejob_change", args=[job.pk]) for job in jobs]
        return {url: client.get(url) for url in urls}

    source_admin = make_user(administers=[source])
    client.force_login(source_admin)
    for url, response in pages(source, []).items():
        text = response.content.decode()
        assert response.status_code == 200, url
        assert "bravo" not in text and str(target.pk) not in text, url
        # Only the source's History (on its tab, and refreshed through its status) keeps who read its archive.
        if restorer.username in text:
            assert url.endswith(("/manage/", "/status/")) and text.count(restorer.username) <= 2, url
    tab = client.get(reverse("admin:fractals_fractal_manage", args=[source.pk])).content.decode()
    assert "another fractal" in tab and completed.short_id in tab
    assert f"{completed.rows_restored:,}" not in tab.split("Restores")[-1].split("History")[0]

    target_admin = make_user(administers=[target])
    client.force_login(target_admin)
    for url, response in pages(target, [completed, failed]).items():
        text = response.content.decode()
        assert response.status_code == 200, url
        assert "alpha" not in text and str(source.pk) not in text, url
    tab = client.get(reverse("admin:fractals_fractal_manage", args=[target.pk])).content.decode()
    assert "another fractal" in tab and "300" in tab  # the rows it received are its own to see

    client.force_login(admin)  # a superuser administers both and sees everything
    tab = client.get(reverse("admin:fractals_fractal_manage", args=[target.pk])).content.decode()
    assert "alpha-source-fractal" in tab and "bravo case 5521" in tab
