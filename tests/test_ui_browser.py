"""The fractal Manage page in a real browser (Debian's headless Chromium driven by Selenium), against a
live server and a real worker: the page follows jobs to completion by itself, without a reload by hand."""

import shutil

import pytest
from django.urls import reverse
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import Select, WebDriverWait

from archives.models import Archive, RestoreJob
from strix import logstore

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--window-size=1400,1000"):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=webdriver.ChromeService(shutil.which("chromedriver")), options=options)
    yield driver
    driver.quit()


def login(browser, live_server, username, password):
    browser.get(f"{live_server.url}{reverse('admin:login')}")
    browser.find_element(By.NAME, "username").send_keys(username)
    browser.find_element(By.NAME, "password").send_keys(password)
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    # The login page's own URL is under /admin/ too: wait for the page a logged-in user gets.
    WebDriverWait(browser, 20).until(expected_conditions.presence_of_element_located((By.ID, "user-tools")))


def settled(browser) -> bool:
    """The page has followed every job to its end: nothing running, "Archive now" enabled again."""
    button = browser.find_element(By.ID, "archive-now")
    text = browser.find_element(By.ID, "content-main").text
    running = any(state in text for state in ("Pending", "Archiving", "Restoring"))
    return button.is_enabled() and not running


def test_archive_restore_and_delete_from_the_manage_page_with_live_status(
    browser, live_server, celery_worker, make_user, make_fractal, seed_rows
):
    source, target = make_fractal("ui-source"), make_fractal("ui-target")
    seed_rows(source, 20_000)
    make_user("ui-admin", administers=[source, target], password="ui-password-1")
    login(browser, live_server, "ui-admin", "ui-password-1")
    # The page reloads itself when a job changes state, so elements may go stale between two looks.
    wait = WebDriverWait(
        browser, 60, poll_frequency=0.2, ignored_exceptions=(NoSuchElementException, StaleElementReferenceException)
    )

    browser.get(f"{live_server.url}{reverse('admin:fractals_fractal_manage', args=[source.pk])}")
    assert "20,000" in browser.find_element(By.ID, "content-main").text
    browser.find_element(By.ID, "archive-now").click()
    # No reload by hand: the page polls the status and shows the completed archive by itself.
    wait.until(lambda b: "Completed" in b.find_element(By.ID, "archives").text and settled(b))
    archive = Archive.objects.get(fractal=source)
    assert archive.status == Archive.Status.COMPLETED and archive.row_count == 20_000

    form = browser.find_element(By.CSS_SELECTOR, ".restore-form")
    Select(form.find_element(By.NAME, "target")).select_by_visible_text("ui-target")
    Select(form.find_element(By.NAME, "mode")).select_by_value("replace")
    form.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    alert = wait.until(expected_conditions.alert_is_present())
    assert "Replace ALL log rows of fractal ui-target" in alert.text
    alert.dismiss()  # declining the confirmation sends nothing
    assert not RestoreJob.objects.exists()

    form = browser.find_element(By.CSS_SELECTOR, ".restore-form")
    Select(form.find_element(By.NAME, "target")).select_by_visible_text("ui-target")
    form.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    wait.until(expected_conditions.alert_is_present()).accept()
    wait.until(lambda b: "Restore" in b.find_element(By.CLASS_NAME, "messagelist").text)
    job = RestoreJob.objects.get()
    wait.until(lambda b: RestoreJob.objects.get(pk=job.pk).status == RestoreJob.Status.COMPLETED)
    assert logstore.count_rows(str(target.id)) == 20_000
    browser.get(f"{live_server.url}{reverse('admin:fractals_fractal_manage', args=[source.pk])}")
    wait.until(settled)

    browser.find_element(By.CSS_SELECTOR, "input.deletelink").click()
    wait.until(expected_conditions.alert_is_present()).accept()
    wait.until(lambda b: "No archives yet." in b.find_element(By.ID, "archives").text)
    assert not Archive.objects.exists()


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
