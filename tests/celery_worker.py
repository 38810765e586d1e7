"""A real Celery worker in a subprocess, on the test database, broker and ClickHouse database."""

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


class WorkerProcess:
    def __init__(
        self,
        log_dir: Path,
        pool: str = "prefork",
        concurrency: int = 2,
        queue: str | None = None,
        env: dict | None = None,
    ):
        self.name = f"test-{uuid.uuid4().hex[:8]}@localhost"
        base = os.environ["STRIX_CELERY_QUEUE"]
        # Without a queue of its own, the worker reads all three of the session's (settings.py).
        self.queue = queue or f"{base},{base}.searches,{base}.maintenance"
        self.log_path = log_dir / f"worker-{self.name.split('@')[0]}.log"
        db = connection.settings_dict
        env = {
            **os.environ,
            "DATABASE_URL": f"postgresql://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        self.log = open(self.log_path, "wb")
        celery = Path(sys.executable).with_name("celery")
        self.process = subprocess.Popen(
            [
                str(celery), "-A", "strix", "worker", "--loglevel=INFO", f"--pool={pool}",
                f"--concurrency={concurrency}", "-n", self.name, "-Q", self.queue,
                "--without-gossip", "--without-mingle",
            ],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        self._wait_ready()

    def _wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the Celery worker exited: {self.log_path.read_text()[-3000:]}")
            if b"ready." in self.log_path.read_bytes():
                return
            time.sleep(0.2)
        raise RuntimeError(f"the Celery worker did not start: {self.log_path.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL the whole worker (main process and pool children), as a machine crash would."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def is_stopped(self) -> bool:
        """Whether the worker's main process is frozen by SIGSTOP (state T in /proc)."""
        try:
            stat = Path(f"/proc/{self.process.pid}/stat").read_text()
        except FileNotFoundError:
            return False
        return stat.rsplit(")", 1)[1].split()[0] in ("T", "t")

    def signal(self, signum: int) -> None:
        os.killpg(self.process.pid, signum)

    def stop(self) -> None:
        if self.is_stopped():
            self.signal(signal.SIGCONT)
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()


def wait_until(predicate, timeout: float = 120, interval: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


def wait_for_job(job, timeout: float = 180):
    """Poll a job's record until it has ended; returns the fresh record."""

    def ended():
        job.refresh_from_db()
        return not job.is_active

    wait_until(ended, timeout, 0.2, f"{type(job).__name__} {job.pk} to end")
    return job
