"""Fixtures for tests against the real PostgreSQL, Redis and ClickHouse.

Each test session gets a throwaway ClickHouse database and its own Redis database number, set both in
Django's settings (for this process) and in the environment (for worker subprocesses).
"""

import os
import uuid

import pytest
from django.conf import settings

from strix import logstore
from strix.crypto.keys import generate_key

TEST_REDIS_DB = 13
# Short locks so that a killed worker's lock lapses within seconds (the reaper's cue).
TEST_LOCK_TTL = 4.0


@pytest.fixture(scope="session", autouse=True)
def strix_test_environment(tmp_path_factory):
    from strix.envconfig import storage_backends

    ch_database = f"strix_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    redis_url = settings.STRIX_REDIS_URL.rsplit("/", 1)[0] + f"/{TEST_REDIS_DB}"
    key = generate_key()
    overrides = {
        "STRIX_CLICKHOUSE_DATABASE": ch_database,
        "STRIX_REDIS_URL": redis_url,
        "STRIX_BACKUP_ENCRYPTION_KEY": key,
        "STRIX_LOCK_TTL_SECONDS": str(TEST_LOCK_TTL),
        # A queue of this session's own: a worker of another test run can never take its tasks.
        "STRIX_CELERY_QUEUE": f"strix-test-{ch_database}",
    }
    previous = {name: getattr(settings, name, None) for name in overrides}
    for name, value in overrides.items():
        setattr(settings, name, value)
        os.environ[name] = value
    settings.STRIX_LOCK_TTL_SECONDS = TEST_LOCK_TTL
    settings.CELERY_BROKER_URL = settings.CELERY_RESULT_BACKEND = redis_url
    from strix.celery import app as celery_app

    celery_app.conf.broker_url = celery_app.conf.result_backend = redis_url
    settings.CELERY_TASK_DEFAULT_QUEUE = celery_app.conf.task_default_queue = os.environ["STRIX_CELERY_QUEUE"]
    settings.STRIX_BACKUP_DECRYPTION_KEYS = []
    storage_root = tmp_path_factory.mktemp("storage")
    for name, path in (
        ("STRIX_ARCHIVE_DIR", storage_root / "archives"),
        ("STRIX_BACKUP_DIR", storage_root / "backups"),
    ):
        setattr(settings, name, path)
        os.environ[name] = str(path)
    settings.STORAGES = {
        **settings.STORAGES,
        **storage_backends({}, settings.STRIX_ARCHIVE_DIR, settings.STRIX_BACKUP_DIR),
    }
    for variable in ("STRIX_S3_BUCKET", "STRIX_S3_ENDPOINT"):
        os.environ.pop(variable, None)
    os.environ.pop("STRIX_BACKUP_DECRYPTION_KEYS", None)
    logstore.ensure_schema()
    yield
    logstore.drop_database(ch_database)
    for name, value in previous.items():
        setattr(settings, name, value)


@pytest.fixture
def make_fractal(db):
    from strix.fractals.models import Fractal

    def make(name=None, **fields):
        return Fractal.objects.create(name=name or f"fractal-{uuid.uuid4().hex[:8]}", **fields)

    return make


@pytest.fixture
def make_user(db):
    from django.contrib.auth import get_user_model

    def make(username=None, *, staff=True, superuser=False, administers=(), password="pw-for-tests"):
        user = get_user_model().objects.create_user(
            username=username or f"user-{uuid.uuid4().hex[:8]}",
            password=password,
            is_staff=staff,
            is_superuser=superuser,
        )
        from strix.fractals.models import FractalMembership

        for fractal in administers:
            FractalMembership.objects.create(fractal=fractal, user=user, role=FractalMembership.Role.ADMIN)
        return user

    return make


@pytest.fixture
def admin(make_user):
    """A superuser: administers every fractal."""
    return make_user(superuser=True)


@pytest.fixture
def failpoint_worker(tmp_path):
    """Start workers of their own, each on a queue of its own, acting at the failpoints given
    (strix.failpoints, e.g. ``"restore.before-clear"`` or ``"archive.streaming#3:sleep6"``); all are
    stopped at the end of the test."""
    from tests.celery_worker import WorkerProcess

    workers = []

    def start(failpoints: str, pool: str = "solo", env: dict | None = None) -> "WorkerProcess":
        worker = WorkerProcess(
            tmp_path, pool=pool, concurrency=1, queue=f"fp-{uuid.uuid4().hex[:8]}",
            env={"STRIX_FAILPOINTS": failpoints, **(env or {})},
        )  # fmt: skip
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()


@pytest.fixture
def seed_rows():
    """Insert generated demo rows into a fractal; returns the rows inserted."""
    from strix.fractals.demo import generate_rows

    def seed(fractal, count, days=7, seed=1, now=None):
        rows = list(generate_rows(count, days=days, seed=seed, now=now))
        logstore.insert_rows(str(fractal.id), rows)
        return rows

    return seed


@pytest.fixture(scope="session")
def s3_server():
    from tests.s3server import S3Server

    server = S3Server()
    yield server
    server.stop()


@pytest.fixture
def s3_bucket(s3_server):
    bucket = f"strix-test-{uuid.uuid4().hex[:10]}"
    s3_server.client().create_bucket(Bucket=bucket)
    return bucket


@pytest.fixture(params=["disk", "s3"])
def storage_backend(request, settings, tmp_path):
    """Point the archives and backups stores at a fresh directory or a fresh bucket on the S3 server."""
    from strix.envconfig import storage_backends

    if request.param == "s3":
        server = request.getfixturevalue("s3_server")
        s3 = server.settings_for(request.getfixturevalue("s3_bucket"))
    else:
        s3 = {}
    settings.STORAGES = {
        **settings.STORAGES,
        **storage_backends(s3, tmp_path / "archives", tmp_path / "backups"),
    }
    return request.param


@pytest.fixture(scope="session")
def celery_worker(django_db_setup, django_db_blocker, tmp_path_factory):
    """A real worker with two processes, shared by the tests that need one (use with transactional_db)."""
    from tests.celery_worker import WorkerProcess

    with django_db_blocker.unblock():
        worker = WorkerProcess(tmp_path_factory.mktemp("worker-logs"))
    yield worker
    worker.stop()


@pytest.fixture
def browser():
    """Headless Chromium (Debian's), driven by Selenium; its console log kept for the tests to read."""
    import shutil

    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--window-size=1500,1100"):  # fmt: skip
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=webdriver.ChromeService(shutil.which("chromedriver")), options=options)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def clickhouse_cluster(tmp_path_factory):
    """ZooKeeper and two more ClickHouse servers (scripts/cluster.sh), for the module that uses them:
    stopped after it, so that their background work never competes with later tests' time bounds."""
    from tests.clickhouse_cluster import Cluster

    cluster = Cluster.start(tmp_path_factory.mktemp("chcluster") / "cluster")
    yield cluster
    cluster.stop()


@pytest.fixture
def webhook(settings):
    """A real HTTP server on a free port as the alert webhook; the JSON bodies it received."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    calls = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):
            calls.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings.STRIX_ALERT_WEBHOOK_URL = f"http://127.0.0.1:{server.server_port}/hook"
    yield calls
    server.shutdown()
