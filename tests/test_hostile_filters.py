"""Hostile filter text through every entry point (admin Restore and Search steps, `archives restore`,
`archives search`, the dry-run estimate), as the admin of one fractal attacking another: each text either
matches literally — the rows equal a count made independently in Python over the seeded rows — or is
refused with a form error; nothing of the other fractal ever shows (real PostgreSQL and ClickHouse)."""

import io
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from archives import services
from archives.models import ArchiveEvent, ArchiveSearch, RestoreJob
from archives.services import search_jobs
from archives.services.options import RestoreOptions
from archives.services.plan import plan_restore
from archives.services.search import search_archive
from strix import logstore
from tests.celery_worker import wait_until
from tests.jobs import archive_in_process

pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "SECRET-OF-FRACTAL-B"
BASE = datetime(2026, 11, 1, tzinfo=UTC)

# Raw logs of the attacked admin's own fractal, holding the hostile texts literally, among ordinary ones.
OWN_LOGS = [
    "disk usage at 100% on /var",
    "literal %(start).1s in a format string",
    "printf said %s and %d",
    "escaped %% percent",
    "it's a quote",
    "a backslash \\ in a path C:\\Users",
    "quote after backslash \\' here",
    "unicode zoë 分析员 müller",
    "' OR 1=1 -- classic",
    "plain line with nothing special",
    "another plain line",
    "trailing quote'",
]
HOSTILE = [
    "%(start).1s",
    "%s",
    "%%",
    "'",
    "\\",
    "\\'",
    "' OR 1=1 --",
    "zoë 分析员",
    "100%",
    "%(end)s') OR fractal_id != '",
    # would read the other fractal's rows if pasted into the statement
    "') OR position(raw_log, concat('SECRET-OF-', 'FRACTAL-B')) > 0 OR ('",
    "x" * 10_000,
    "nul\x00byte",
]
REFUSED = {"x" * 10_000: "at most 500", "nul\x00byte": "NUL"}


def _row(index: int, raw: str, fields: dict) -> tuple:
    at = BASE + timedelta(minutes=index)
    return at, f"{uuid.uuid4().hex}", raw, json.dumps(fields, ensure_ascii=False), at


@pytest.fixture
def attack(make_fractal, make_user, admin):
    """Fractal A (the attacker's), B (the victim's, with a secret row), and I (the attacker's investigation)."""
    own, victim, investigation = make_fractal(), make_fractal(), make_fractal()
    rows = [_row(i, raw, {"n": i, "ok": i % 2 == 0, "user": "zoë" if i % 3 == 0 else "bob"}) for i, raw in
            enumerate(OWN_LOGS * 3)]  # fmt: skip
    logstore.insert_rows(str(own.id), rows)
    logstore.insert_rows(str(victim.id), [_row(0, SECRET, {"secret": SECRET})])
    archive = archive_in_process(admin, own)
    user = make_user(administers=[own, investigation])
    return dict(own=own, victim=victim, investigation=investigation, rows=rows, archive=archive, user=user)


def literal_count(rows, text: str) -> int:
    return sum(1 for row in rows if text in row[2])


def nothing_of_the_victim_anywhere(victim):
    texts = [*RestoreJob.objects.values_list("error", flat=True)]
    texts += ArchiveSearch.objects.values_list("error", flat=True)
    texts += [e.detail for e in ArchiveEvent.objects.exclude(fractal=victim)]
    assert not [t for t in texts if SECRET in t or str(victim.id) in t]
    assert logstore.count_rows(str(victim.id)) == 1


def run_restore_job(job_id) -> RestoreJob:
    """Run the queued restore here — unless a worker of the test session took it first — and wait for it."""
    services.run_restore(job_id)
    wait_until(lambda: RestoreJob.objects.get(pk=job_id).status not in RestoreJob.ACTIVE, 60, 0.1, "the restore")
    job = RestoreJob.objects.get(pk=job_id)
    assert job.status == RestoreJob.Status.COMPLETED, job.error
    return job


def run_search_job(search_id) -> ArchiveSearch:
    """The same for a queued search."""
    search_jobs.run_search(search_id)
    wait_until(lambda: ArchiveSearch.objects.get(pk=search_id).status not in ArchiveSearch.ACTIVE, 60, 0.1, "search")
    return ArchiveSearch.objects.get(pk=search_id)


def test_hostile_filter_text_in_the_admin_restore_and_search_steps(attack, client):
    own, investigation, archive = attack["own"], attack["investigation"], attack["archive"]
    client.force_login(attack["user"])
    restore_url = reverse("admin:fractals_fractal_restore", args=[own.pk, archive.pk])
    search_url = reverse("admin:fractals_fractal_search", args=[own.pk, archive.pk])
    for text in HOSTILE:
        expected = literal_count(attack["rows"], text)
        form = {"target": investigation.pk, "clear_existing": "on", "confirm_name": investigation.name}
        response = client.post(restore_url, {**form, "contains": text})
        if text in REFUSED:
            assert response.status_code == 400 and REFUSED[text] in response.content.decode(), text[:40]
            assert not RestoreJob.objects.filter(target=investigation, status__in=RestoreJob.ACTIVE).exists()
        else:
            assert response.status_code == 302, (text, response.content[:3000])
            job = RestoreJob.objects.filter(target=investigation).latest("created_at")
            job = run_restore_job(job.pk)
            assert job.rows_restored == expected == logstore.count_rows(str(investigation.id)), text

        response = client.post(search_url, {"contains": text})
        if text in REFUSED:
            assert response.status_code == 400 and REFUSED[text] in response.content.decode()
        else:
            assert response.status_code == 302, text
            search = run_search_job(ArchiveSearch.objects.latest("created_at").pk)
            assert search.status == ArchiveSearch.Status.COMPLETED, search.error
            found = [json.loads(line) for line in b"".join(search_jobs.result_blocks(search)).splitlines()]
            assert len(found) == search.matches == expected, text
            assert all(text in record["raw_log"] for record in found)
        page = client.get(reverse("admin:fractals_fractal_manage", args=[own.pk])).content.decode()
        assert SECRET not in page and str(attack["victim"].id) not in page
    nothing_of_the_victim_anywhere(attack["victim"])


def test_hostile_filter_text_in_the_command_line_restore_search_and_dry_run(attack):
    investigation, archive, user = attack["investigation"], attack["archive"], attack["user"]
    for text in HOSTILE:
        expected = literal_count(attack["rows"], text)
        common = [str(archive.id), "--contains", text]
        if text in REFUSED:
            for command in (["restore", *common, "--as", user.username], ["search", *common]):
                with pytest.raises(CommandError, match=REFUSED[text]):
                    call_command("archives", *command, stdout=io.StringIO(), stderr=io.StringIO())
            continue
        out = io.StringIO()
        call_command("archives", "restore", *common, "--target", investigation.name, "--dry-run", stdout=out)
        # The archive is smaller than the sample: the estimate is an exact count of the same predicate.
        assert f"insert about {expected:,} rows" in out.getvalue() or f"insert {expected:,} rows" in out.getvalue()
        out = io.StringIO()
        call_command(
            "archives", "restore", *common, "--target", investigation.name, "--as", user.username,
            "--non-interactive", stdout=out,
        )  # fmt: skip
        job = run_restore_job(RestoreJob.objects.filter(target=investigation).latest("created_at").pk)
        assert job.rows_restored == expected == logstore.count_rows(str(investigation.id)), text
        out = io.StringIO()
        call_command("archives", "search", *common, stdout=out, stderr=io.StringIO())
        found = [json.loads(line) for line in out.getvalue().splitlines()]
        assert len(found) == expected and all(text in r["raw_log"] for r in found), text
    nothing_of_the_victim_anywhere(attack["victim"])


@pytest.mark.parametrize(
    "field_text, wanted",
    [
        ("n=7", lambda f: f["n"] == 7),  # a number
        ("n=7.0", lambda f: f["n"] == 7),  # the same number
        ("ok=true", lambda f: f["ok"] is True),  # a boolean, as JSON spells it
        ("user=zoë", lambda f: f["user"] == "zoë"),  # unicode
        ("user=%(start).1s", lambda f: False),
        ("user=' OR 1=1 --", lambda f: False),
    ],
)
def test_a_field_filter_means_the_same_in_restore_search_and_estimate(attack, field_text, wanted):
    archive, investigation = attack["archive"], attack["investigation"]
    expected = sum(1 for row in attack["rows"] if wanted(json.loads(row[3])))  # counted independently
    options = RestoreOptions.parse(field_text=field_text)
    plan = plan_restore(archive, investigation, True, options)
    assert plan.filter_sample.matched == expected  # the whole archive is the sample
    job = services.request_restore(None, archive, investigation, options=options, enqueue=False)
    assert run_restore_job(job.pk).rows_restored == expected == logstore.count_rows(str(investigation.id))
    found = list(search_archive(archive, options))
    assert len(found) == expected


def test_field_values_of_every_json_type_match_one_definition(make_fractal, admin):
    fractal = make_fractal()
    values = [None, True, False, 0, 4624, 1.5, "4624", "", 'a"quote', "100%", "zoë", {"a": [1, 2]}, [1, "x"]]
    rows = [_row(i, f"row {i}", {"v": value}) for i, value in enumerate(values)]
    rows.append(_row(99, "no v at all", {"w": 1}))
    logstore.insert_rows(str(fractal.id), rows)
    archive = archive_in_process(admin, fractal)
    cases = {
        "v=null": 1,
        "v=true": 1,
        "v=false": 1,
        "v=4624": 2,  # the number and the string
        "v=1.50": 1,
        "v=": 1,
        'v=a"quote': 1,
        "v=100%": 1,
        "v=zoë": 1,
        'v={"a":[1,2]}': 1,
        'v=[1,"x"]': 1,
        "v=None": 0,
        "v=True": 0,
    }
    for field_text, count in cases.items():
        options = RestoreOptions.parse(field_text=field_text)
        assert len(list(search_archive(archive, options))) == count, field_text
        job = services.request_restore(None, archive, make_fractal(), options=options, enqueue=False)
        assert run_restore_job(job.pk).rows_restored == count, field_text
