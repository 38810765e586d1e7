"""The fractal's Manage tab in a real browser (Debian's headless Chromium driven by Selenium), against a
live server and a real worker, following the product documentation's steps literally.

The worker here pauses two seconds a few blocks into each archive (a failpoint), so that the page is
surely seen "Archiving" with its spinner before "Completed"; everything else is as in production.
"""

import uuid

import pytest
from django.urls import reverse
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException, WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import Select, WebDriverWait

from archives import services
from archives.models import Archive, RestoreJob
from strix import logstore
from strix.storage import get_store
from tests.celery_worker import WorkerProcess

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def ui_worker(tmp_path, settings):
    """A worker on a queue of its own, which the web enqueues to for this test."""
    queue = f"ui-{uuid.uuid4().hex[:8]}"
    queues = f"{queue},{queue}.searches,{queue}.maintenance"  # all three of the queues the web uses
    worker = WorkerProcess(tmp_path, queue=queues, env={"STRIX_FAILPOINTS": "archive.streaming#2:sleep2"})
    settings.CELERY_TASK_DEFAULT_QUEUE = queue
    yield worker
    worker.stop()


class Steps:
    """Screenshots of each step, saved under the test's temporary directory (paths printed)."""

    def __init__(self, browser, directory):
        self.browser, self.directory, self.count = browser, directory, 0

    def shot(self, name):
        self.count += 1
        path = self.directory / f"{self.count:02d}-{name}.png"
        self.browser.save_screenshot(str(path))
        print(f"screenshot: {path}")


def login(browser, live_server, username, password):
    browser.get(f"{live_server.url}{reverse('admin:login')}")
    browser.find_element(By.NAME, "username").send_keys(username)
    browser.find_element(By.NAME, "password").send_keys(password)
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    # The login page's own URL is under /admin/ too: wait for the page a logged-in user gets.
    WebDriverWait(browser, 20).until(expected_conditions.presence_of_element_located((By.ID, "user-tools")))


def archive_rows(browser):
    try:
        return browser.find_element(By.ID, "archive-rows").text
    except WebDriverException:  # the rows were swapped while being read: read again next poll
        return ""


def console_errors(browser):
    return [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]


def test_the_documented_archive_schedule_restore_and_delete_steps_in_the_browser(
    browser, live_server, ui_worker, make_user, make_fractal, seed_rows, tmp_path
):
    production, investigation = make_fractal("soc-production"), make_fractal("incident-2026-042")
    seed_rows(production, 20_000, seed=51)
    seed_rows(investigation, 1_000, seed=52)
    make_user("ui-admin", administers=[production, investigation], password="ui-password-1")
    steps = Steps(browser, tmp_path)
    login(browser, live_server, "ui-admin", "ui-password-1")
    wait = WebDriverWait(
        browser,
        90,
        poll_frequency=0.1,
        ignored_exceptions=(NoSuchElementException, StaleElementReferenceException, WebDriverException),
    )

    # 1. Navigate to your fractal's Manage tab.
    browser.get(f"{live_server.url}{reverse('admin:fractals_fractal_change', args=[production.pk])}")
    browser.find_element(By.ID, "manage-tab").click()
    wait.until(lambda b: b.find_element(By.ID, "archives-heading").text == "Archives")
    manage_url = browser.current_url
    steps.shot("manage-tab")

    # 2-3. Scroll to the Archives section and click Create Archive: "Archiving" with a spinner, then
    # "Completed", without a reload (the marker set on the page survives).
    browser.execute_script("window.notReloaded = true;")
    browser.find_element(By.ID, "create-archive").click()
    wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#archive-rows .spinner") and "Archiving" in archive_rows(b))
    browser.execute_script("window.notReloaded = true;")
    steps.shot("archiving")
    wait.until(lambda b: "Completed" in archive_rows(b) and "Archiving" not in archive_rows(b))
    assert browser.execute_script("return window.notReloaded === true;")
    assert "Manual" in archive_rows(browser)
    steps.shot("completed")
    first = Archive.objects.get(fractal=production)
    assert first.row_count == 20_000

    # Archive Schedule: Daily, Maximum Archives 2, saved in place.
    Select(browser.find_element(By.ID, "schedule")).select_by_visible_text("Daily")
    browser.find_element(By.ID, "max_archives").send_keys("2")
    browser.find_element(By.ID, "save-schedule").click()
    wait.until(lambda b: "Archive Schedule saved: Daily" in b.find_element(By.CLASS_NAME, "messagelist").text)
    production.refresh_from_db()
    assert (production.archive_schedule, production.max_archives) == ("daily", 2)
    steps.shot("schedule-saved")

    # A half-typed value survives the page's live updates while a job changes state: no reload.
    browser.find_element(By.ID, "max_archives").send_keys(Keys.END, Keys.BACKSPACE, "3")
    # The background scheduler's scan (as celery-beat runs it every 5 minutes) makes a Scheduled archive.
    [scheduled] = services.scan_schedules()
    wait.until(lambda b: "Scheduled" in archive_rows(b) and archive_rows(b).count("Completed") == 2)
    assert browser.find_element(By.ID, "max_archives").get_attribute("value") == "3"
    # A third archive: Maximum Archives (2, as saved) deletes the oldest.
    browser.find_element(By.ID, "create-archive").click()
    wait.until(lambda b: not Archive.objects.filter(pk=first.pk).exists())  # the oldest went, manual or not
    wait.until(lambda b: first.short_id not in archive_rows(b) and archive_rows(b).count("Completed") == 2)
    kinds = "#archive-rows .badge-manual, #archive-rows .badge-scheduled"
    badges = [e.text for e in browser.find_elements(By.CSS_SELECTOR, kinds)]
    assert badges == ["Manual", "Scheduled"]  # newest first
    steps.shot("third-archive-pruned-the-oldest")
    browser.get(manage_url)
    assert "Maximum Archives 2: deleted the oldest" in browser.find_element(By.ID, "history").text

    # Restore: the target dropdown defaults to the current fractal; choose the investigation fractal,
    # uncheck Clear existing logs (append), confirm.
    newest = Archive.objects.filter(fractal=production).exclude(pk=scheduled.pk).get()
    before = logstore.count_rows(str(investigation.id))
    browser.find_element(By.ID, f"restore-{newest.id}").click()
    target = Select(browser.find_element(By.ID, "target"))
    assert target.first_selected_option.text == "soc-production"
    assert browser.find_element(By.ID, "clear_existing").is_selected()
    assert "will be mixed with restored data" in browser.find_element(By.ID, "content-main").text
    target.select_by_visible_text("incident-2026-042")
    browser.find_element(By.ID, "clear_existing").click()
    wait.until(lambda b: "keep its 1,000 rows and insert 20,000 rows" in b.find_element(By.ID, "summary").text)
    steps.shot("restore-step-append")
    # The half-filled restore step survives another job changing state meanwhile.
    elsewhere = services.request_archive(None, investigation)
    wait.until(lambda b: Archive.objects.get(pk=elsewhere.pk).status == Archive.Status.COMPLETED)
    assert Select(browser.find_element(By.ID, "target")).first_selected_option.text == "incident-2026-042"
    assert not browser.find_element(By.ID, "clear_existing").is_selected()
    browser.find_element(By.ID, "confirm-restore").click()
    wait.until(lambda b: "Restore" in b.find_element(By.CLASS_NAME, "messagelist").text)
    job = RestoreJob.objects.get()
    wait.until(lambda b: "Completed" in b.find_element(By.ID, "restore-rows").text)
    assert RestoreJob.objects.get(pk=job.pk).status == RestoreJob.Status.COMPLETED
    assert logstore.count_rows(str(investigation.id)) == before + newest.row_count
    steps.shot("restore-completed")

    # A replace restore's confirmation shows the counts; declining sends nothing.
    browser.find_element(By.ID, f"restore-{newest.id}").click()
    Select(browser.find_element(By.ID, "target")).select_by_visible_text("incident-2026-042")
    wait.until(lambda b: "Will delete 21,000 rows (" in b.find_element(By.ID, "summary").text)
    assert browser.find_element(By.ID, "confirm_name").is_displayed()  # another fractal's logs: type its name
    steps.shot("replace-confirmation")
    browser.find_element(By.ID, "cancel-restore").click()
    wait.until(lambda b: b.current_url == manage_url)
    assert RestoreJob.objects.count() == 1

    # Delete: the record and the stored file.
    browser.find_element(By.ID, f"delete-{newest.id}").click()
    wait.until(expected_conditions.alert_is_present()).accept()
    wait.until(lambda b: str(newest.id)[:8] not in archive_rows(b))
    assert not Archive.objects.filter(pk=newest.pk).exists()
    assert not get_store("archives").exists(newest.file_name)
    steps.shot("deleted")
    assert console_errors(browser) == []


def test_every_control_of_the_manage_tab_has_a_label_and_works_from_the_keyboard(
    browser, live_server, make_user, make_fractal
):
    fractal = make_fractal("ui-keyboard")
    archive_in = services.request_archive(None, fractal, enqueue=False)
    services.run_archive(archive_in.id)
    make_user("ui-keys", administers=[fractal], password="ui-password-3")
    login(browser, live_server, "ui-keys", "ui-password-3")
    browser.get(f"{live_server.url}{reverse('admin:fractals_fractal_manage', args=[fractal.pk])}")
    unlabelled = browser.execute_script(
        """
        return Array.from(document.querySelectorAll('#content-main button, #content-main input:not([type=hidden]),'
            + ' #content-main select, #content-main a.button')).filter(function (el) {
          const label = el.id && document.querySelector('label[for="' + el.id + '"]');
          return !(label || el.getAttribute('aria-label') || el.textContent.trim() || el.value);
        }).map(function (el) { return el.outerHTML; });
        """
    )
    assert unlabelled == []
    # Tab to the Verify button and press Enter: the keyboard alone starts a verification.
    verify = browser.find_element(By.ID, f"verify-{archive_in.id}")
    for _ in range(60):
        browser.switch_to.active_element.send_keys(Keys.TAB)
        if browser.switch_to.active_element == verify:
            break
    assert browser.switch_to.active_element == verify
    browser.switch_to.active_element.send_keys(Keys.ENTER)
    WebDriverWait(browser, 20).until(lambda b: "Verifying archive" in b.find_element(By.CLASS_NAME, "messagelist").text)
    assert console_errors(browser) == []


def test_a_fractal_the_user_does_not_administer_is_not_found_in_the_browser(
    browser, live_server, make_user, make_fractal
):
    mine, theirs = make_fractal("ui-mine"), make_fractal("ui-theirs")
    make_user("ui-limited", administers=[mine], password="ui-password-2")
    login(browser, live_server, "ui-limited", "ui-password-2")
    browser.get(f"{live_server.url}{reverse('admin:fractals_fractal_changelist')}")
    listing = browser.find_element(By.ID, "result_list").text
    assert "ui-mine" in listing and "ui-theirs" not in listing
    browser.get(f"{live_server.url}{reverse('admin:fractals_fractal_manage', args=[theirs.pk])}")
    assert "Not Found" in browser.page_source or "404" in browser.title


def test_an_investigator_restores_one_day_with_a_7_day_hold_and_sees_the_hold_in_the_manage_tab(
    browser, live_server, ui_worker, make_user, make_fractal, seed_rows, tmp_path
):
    from datetime import UTC, datetime, timedelta

    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    production, investigation = make_fractal("prod-hold"), make_fractal("case-hold", retention_days=3)
    seed_rows(production, 20_000, days=10, seed=71, now=today)
    archive = services.request_archive(None, production, enqueue=False)
    services.run_archive(archive.id)
    make_user("ui-dfir", administers=[production, investigation], password="ui-password-4")
    steps = Steps(browser, tmp_path)
    login(browser, live_server, "ui-dfir", "ui-password-4")
    wait = WebDriverWait(
        browser, 90, poll_frequency=0.1, ignored_exceptions=(NoSuchElementException, WebDriverException)
    )

    day = today - timedelta(days=6)
    expected = logstore.window_checksum(str(production.id), day, day + timedelta(days=1))
    browser.get(f"{live_server.url}{reverse('admin:fractals_fractal_restore', args=[production.pk, archive.pk])}")
    Select(browser.find_element(By.ID, "target")).select_by_visible_text("case-hold")
    browser.find_element(By.ID, "clear_existing").click()  # append
    # Both bounds first, then one change event: the summary is asked for once, with both.
    browser.execute_script(
        "document.getElementById('from').value = arguments[0]; document.getElementById('to').value = arguments[1];"
        " document.getElementById('to').dispatchEvent(new Event('change'));",
        f"{day:%Y-%m-%dT%H:%M}", f"{day + timedelta(days=1):%Y-%m-%dT%H:%M}",
    )  # fmt: skip
    Select(browser.find_element(By.ID, "hold_days")).select_by_visible_text("7 days")
    wait.until(lambda b: f"insert {expected[0]:,} rows" in b.find_element(By.ID, "summary").text)
    steps.shot("one-day-restore-step")
    browser.find_element(By.ID, "confirm-restore").click()
    job = wait.until(lambda b: RestoreJob.objects.filter(target=investigation, status="completed").first())
    assert logstore.fractal_checksum(str(investigation.id)) == expected
    assert job.hold_days == 7 and job.hold_until > datetime.now(UTC) + timedelta(days=6)

    browser.get(f"{live_server.url}{reverse('admin:fractals_fractal_manage', args=[investigation.pk])}")
    holds = browser.find_element(By.ID, "restore-holds").text
    assert job.short_id in holds and f"{job.hold_until:%Y-%m-%d %H:%M}" in holds
    steps.shot("hold-in-manage-tab")
    assert console_errors(browser) == []


def test_full_read_and_days_copied_in_the_manage_tab_as_one_fractals_admin(
    browser, live_server, ui_worker, make_user, make_fractal, seed_rows, tmp_path
):
    """A fractal admin sees how each archive was made (days copied from the previous archive, days
    read), asks for a full read with the check box, and sees nothing of a fractal they do not administer."""
    from datetime import UTC, datetime, timedelta

    from tests.jobs import archive_in_process

    mine, theirs = make_fractal("soc-synthetic"), make_fractal("other-team")
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    seed_rows(mine, 3_000, days=4, seed=61, now=midnight - timedelta(days=1, milliseconds=1))
    seed_rows(theirs, 500, seed=62)
    archive_in_process(None, mine)
    seed_rows(mine, 400, days=1, seed=63, now=midnight - timedelta(milliseconds=1))  # a new day
    synthetic = archive_in_process(None, mine)
    their_archive = archive_in_process(None, theirs)
    assert (synthetic.days_copied, synthetic.days_read) == (4, 1)
    make_user("synthetic-admin", administers=[mine], password="ui-password-2")
    steps = Steps(browser, tmp_path)
    login(browser, live_server, "synthetic-admin", "ui-password-2")
    wait = WebDriverWait(browser, 90, poll_frequency=0.1, ignored_exceptions=(WebDriverException,))

    browser.get(f"{live_server.url}{reverse('admin:fractals_fractal_manage', args=[mine.pk])}")
    wait.until(lambda b: "4 days copied, 1 day read" in archive_rows(b))
    assert "5 days read" not in archive_rows(browser)  # the first archive read 4 days
    label = browser.find_element(By.CSS_SELECTOR, "label[for=full-read]")
    assert label.text.strip() == "Full read"
    steps.shot("days-copied")

    browser.find_element(By.ID, "full-read").click()
    browser.find_element(By.ID, "create-archive").click()
    wait.until(lambda b: "5 days read (full read)" in archive_rows(b))
    assert Archive.objects.filter(fractal=mine, full_read=True, status="completed").count() == 1
    steps.shot("full-read-completed")
    assert console_errors(browser) == []

    browser.get(f"{live_server.url}{reverse('admin:fractals_fractal_manage', args=[theirs.pk])}")
    page = browser.page_source
    assert their_archive.short_id not in page and "other-team" not in page


def test_a_fractal_admin_searches_an_archive_and_reads_the_matches_in_the_browser(
    browser, live_server, ui_worker, make_user, make_fractal, seed_rows, tmp_path
):
    """Search from the Manage tab: the matches the page counts are the raw-log matches, among the rows
    the archive holds (read from its index), and another team's search result is Not Found."""
    import json

    from archives.models import ArchiveSearch
    from archives.services import search_jobs
    from archives.services.options import RestoreOptions
    from tests.jobs import archive_in_process

    mine, theirs = make_fractal("soc-search"), make_fractal("other-team-search")
    rows = seed_rows(mine, 4_000, days=3, seed=64)
    seed_rows(theirs, 500, seed=65)
    archive = archive_in_process(None, mine)
    their_search = search_jobs.request_search(
        None, archive_in_process(None, theirs), RestoreOptions.parse(contains="sshd")
    )
    expected = sum("sshd" in row[2] for row in rows)
    assert 0 < expected < 4_000
    make_user("search-admin", administers=[mine], password="ui-password-3")
    steps = Steps(browser, tmp_path)
    login(browser, live_server, "search-admin", "ui-password-3")
    wait = WebDriverWait(browser, 90, poll_frequency=0.1, ignored_exceptions=(WebDriverException,))

    browser.get(f"{live_server.url}{reverse('admin:fractals_fractal_manage', args=[mine.pk])}")
    wait.until(lambda b: b.find_element(By.ID, f"search-{archive.id}")).click()
    wait.until(lambda b: b.find_element(By.ID, "contains")).send_keys("sshd")
    steps.shot("search-step")
    browser.find_element(By.ID, "start-search").click()
    search = wait.until(lambda b: ArchiveSearch.objects.filter(archive=archive).first())
    wait.until(lambda b: b.find_element(By.ID, f"view-search-{search.id}")).click()
    summary = wait.until(lambda b: b.find_element(By.ID, "search-summary")).text
    assert f"{expected:,} matches in 4,000 rows read" in summary, summary
    page = browser.page_source
    search.refresh_from_db()
    first = [json.loads(line) for line in b"".join(search_jobs.result_blocks(search)).splitlines()[:3]]
    assert first == search_jobs.preview(search, limit=3) and all(row["timestamp"] in page for row in first)
    steps.shot("search-result")
    assert console_errors(browser) == []

    manage_theirs = reverse("admin:fractals_fractal_search_result", args=[theirs.pk, their_search.pk])
    browser.get(f"{live_server.url}{manage_theirs}")
    assert ("Not Found" in browser.page_source or "404" in browser.title) and "sshd" not in browser.page_source
