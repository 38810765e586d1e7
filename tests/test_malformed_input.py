"""Malformed input through every admin URL and form, as the admin of one fractal: NUL characters, 10 kB
of text, ids that are not UUIDs, negative, huge and non-ASCII numbers. Each answer is a page, a redirect
or a 400/404 with a message — never a 500 (real PostgreSQL and ClickHouse)."""

import uuid

import pytest
from django.test import Client
from django.urls import reverse

from archives import services
from archives.services import search_jobs
from archives.services.options import RestoreOptions
from tests.jobs import archive_in_process

pytestmark = pytest.mark.django_db(transaction=True)

BAD = ["\x00", "a\x00b", "x" * 10_240, "not-a-uuid", "-1", "0", "99999999999999999999", "1e9", "٣", " ", ""]
FORM_FIELDS = ["target", "from", "to", "contains", "field", "clear_existing", "hold_days", "confirm_name"]
ACTIONS = ["archive", "verify", "delete", "cancel", "schedule", "legal_hold", "release_legal_hold", "release_hold"]


def test_no_admin_url_or_form_answers_500_to_malformed_input(make_fractal, make_user, admin, seed_rows):
    fractal, other = make_fractal(), make_fractal()
    seed_rows(fractal, 200, days=2, seed=91)
    archive = archive_in_process(admin, fractal)
    job = services.request_restore(admin, archive, fractal, clear_existing=False, enqueue=False)
    services.run_restore(job.id)
    search = search_jobs.request_search(admin, archive, RestoreOptions(), enqueue=False)
    client = Client(raise_request_exception=False)
    client.force_login(make_user(administers=[fractal]))

    manage = reverse("admin:fractals_fractal_manage", args=[fractal.pk])
    restore = reverse("admin:fractals_fractal_restore", args=[fractal.pk, archive.pk])
    summary = reverse("admin:fractals_fractal_restore_summary", args=[fractal.pk, archive.pk])
    search_step = reverse("admin:fractals_fractal_search", args=[fractal.pk, archive.pk])
    answers = []

    def answer(method, url, data):
        response = getattr(client, method)(url, data)
        answers.append((response.status_code, method, url, {k: str(v)[:30] for k, v in data.items()}))

    for bad in BAD:
        answer("get", manage, {"archives": bad})
        answer(
            "get", reverse("admin:archives_operations"), {n: bad for n in ("state", "kind", "fractal", "fractal_name")}
        )
        answer("get", reverse("admin:fractals_fractal_changelist"), {"q": bad})
        for name in FORM_FIELDS:
            for url in (restore, summary):
                answer("get", url, {name: bad})
            answer("post", restore, {"target": fractal.pk, name: bad})
            answer("post", search_step, {name: bad})
        for action in ACTIONS:
            fields = ("archive", "job", "reason", "schedule", "max_archives", "confirm_prune")
            answer("post", manage, {"action": action, **{n: bad for n in fields}})
        answer("post", manage, {"action": bad})
        change = reverse("admin:fractals_fractal_change", args=[fractal.pk])
        form = {"name": bad, "retention_days": bad, "archive_schedule": bad, "max_archives": bad}
        answer("post", change, {**form, "memberships-TOTAL_FORMS": bad, "memberships-INITIAL_FORMS": "0"})
    for url in (
        reverse("admin:fractals_fractal_search_result", args=[fractal.pk, uuid.uuid4()]),
        reverse("admin:fractals_fractal_search_download", args=[fractal.pk, uuid.uuid4()]),
        reverse("admin:fractals_fractal_search_result", args=[other.pk, search.pk]),
        reverse("admin:fractals_fractal_restore", args=[other.pk, archive.pk]),
        f"/admin/fractals/fractal/{fractal.pk}/manage/restore/not-a-uuid/",
        "/admin/fractals/fractal/not-a-uuid/manage/",
        "/admin/fractals/fractal/not-a-uuid/change/",
        "/admin/fractals/fractal/not-a-uuid/delete/",
        f"/admin/archives/restorejob/{job.pk}x/change/",
    ):
        answer("get", url, {})

    errors = [a for a in answers if a[0] >= 500]
    assert not errors, errors[:10]
    assert len(answers) > 500
    assert {status for status, *_ in answers} >= {200, 302, 400, 404}
