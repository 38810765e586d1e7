"""`manage.py archives create|list|restore|delete` against the real services and worker."""

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from archives.models import Archive, RestoreJob
from strix import logstore

pytestmark = pytest.mark.django_db(transaction=True)


def run(*args):
    out, err = io.StringIO(), io.StringIO()
    call_command("archives", *args, stdout=out, stderr=err)
    return out.getvalue()


def test_create_wait_list_restore_and_delete_from_the_command_line(celery_worker, make_fractal, seed_rows):
    source, target = make_fractal("cli-source"), make_fractal("cli-target")
    seed_rows(source, 5_000)
    seed_rows(target, 10, seed=2)  # other log ids than the source's: an append adds all 5,000

    out = run("create", "cli-source", "--wait")
    archive = Archive.objects.get(fractal=source)
    assert archive.status == Archive.Status.COMPLETED and "Completed: 5,000 rows" in out
    assert str(archive.id) in run("list", "cli-source")

    with pytest.raises(CommandError, match="confirm on a terminal, pass --non-interactive"):
        run("restore", str(archive.id), "--target", "cli-target", "--wait")
    assert logstore.count_rows(str(target.id)) == 10  # refused without a terminal: nothing changed

    run("restore", str(archive.id), "--target", "cli-target", "--append", "--wait")
    assert logstore.count_rows(str(target.id)) == 5_010
    run("restore", str(archive.id), "--target", "cli-target", "--non-interactive", "--wait")
    assert logstore.count_rows(str(target.id)) == 5_000
    assert RestoreJob.objects.filter(status=RestoreJob.Status.COMPLETED).count() == 2

    run("delete", str(archive.id))
    assert not Archive.objects.filter(pk=archive.pk).exists()


def test_busy_fractal_and_unknown_ids_are_one_line_errors(make_fractal, make_user):
    fractal = make_fractal("busy-one")
    from archives import services

    services.request_archive(None, fractal, enqueue=False)
    with pytest.raises(CommandError, match="already running for fractal busy-one; try again"):
        run("create", "busy-one")
    with pytest.raises(CommandError, match="no archive has the id"):
        run("restore", "not-an-id", "--non-interactive")
    with pytest.raises(CommandError, match="no fractal is named"):
        run("create", "no-such-fractal")


def test_acting_as_a_user_applies_their_rights(make_fractal, make_user):
    make_fractal("guarded")
    make_user("outsider")
    with pytest.raises(CommandError, match="outsider does not administer fractal guarded"):
        run("create", "guarded", "--as", "outsider")


def test_wait_exits_non_zero_when_the_job_failed(make_fractal):
    from archives.management.commands.archives import Command

    failed = Archive.objects.create(fractal=make_fractal(), status=Archive.Status.FAILED, error="disk full")
    with pytest.raises(CommandError, match="archiving failed: disk full"):
        Command()._wait(failed, "Archiving")
