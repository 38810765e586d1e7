"""Backups in generations, verification, and the safety backup a restore takes first (real PostgreSQL,
real pg_dump/pg_restore, backups on disk)."""

import io
import subprocess
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from backups.generations import KeepPolicy, backups_to_keep
from backups.naming import backup_name, backup_time
from backups.services import backup_store
from strix.fractals.models import Fractal
from tests.test_backups import make_backup, own_backup_directory, run, snapshot  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db(transaction=True)


def expected_generations(times: dict[str, datetime], daily: int, weekly: int, monthly: int) -> set[str]:
    """Written apart from backups.generations: the latest backup per period, for the latest N periods."""
    keep = set()
    for count, period in (
        (daily, lambda t: t.strftime("%Y-%m-%d")),
        (weekly, lambda t: t.strftime("%G-W%V")),
        (monthly, lambda t: t.strftime("%Y-%m")),
    ):
        latest: dict[str, str] = {}
        for name, at in times.items():
            key = period(at)
            if key not in latest or at > times[latest[key]]:
                latest[key] = name
        keep |= {latest[key] for key in sorted(latest)[-count:]}
    return keep


def test_sixty_daily_backups_leave_exactly_the_generations_asked_for():
    store = backup_store()
    blob = _stored_bytes(make_backup())
    for name in [info.name for info in _listed()]:
        store.delete(name)
    now = datetime.now(UTC).replace(microsecond=0)
    times = {backup_name(now - timedelta(days=d, hours=1)): now - timedelta(days=d, hours=1) for d in range(1, 61)}
    for name in times:
        with store.open_write(name) as sink:
            sink.write(blob)

    out = run("backup", "--keep-daily", "7", "--keep-weekly", "4", "--keep-monthly", "3")
    newest = out.strip().splitlines()[-1].rsplit(" ", 1)[-1]
    times[newest] = backup_time(newest)
    expected = expected_generations(times, daily=7, weekly=4, monthly=3)
    left = {info.name for info in _listed()}
    assert left == expected and newest in left
    assert 7 <= len(left) <= 14 and f"deleted {61 - len(left)} old backup(s)" in out
    # The same answer from the policy itself, for any subset (a second run deletes nothing more).
    assert backups_to_keep({n: times[n] for n in left}, KeepPolicy(daily=7, weekly=4, monthly=3)) == left


def test_a_prune_that_cannot_delete_a_file_says_so_and_fails(tmp_path):
    names = [make_backup()]
    store = backup_store()
    old = backup_name(datetime.now(UTC) - timedelta(days=3))
    with store.open_write(old) as sink:
        sink.write(_stored_bytes(names[0]))
    path = store.base / old
    subprocess.run(["chattr", "+i", str(path)], check=True)  # immutable: even root cannot delete it
    try:
        out = io.StringIO()
        with pytest.raises(CommandError, match=f"could not delete 1 old backup.*{old}"):
            call_command("backup", "--keep", "1", stdout=out, stderr=io.StringIO())
        assert path.exists() and f"could not delete {old}" in out.getvalue()
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def rewrite(name: str, data: bytes) -> None:
    store = backup_store()
    store.delete(name)  # the store never overwrites a file
    with store.open_write(name) as sink:
        sink.write(data)


def _stored_bytes(name: str) -> bytes:
    with backup_store().open_read(name) as source:
        return source.read()


def _listed():
    from backups.services import list_backups

    return list_backups(backup_store())


def test_verify_backup_refuses_a_flipped_byte_and_a_truncation_without_touching_the_database():
    name = make_backup()
    assert "pg_restore --list" in run("verify_backup", "--restore-file", name)
    blob = _stored_bytes(name)
    for damaged, message in (
        (blob[:300] + bytes([blob[300] ^ 1]) + blob[301:], "failed authentication"),
        (blob[: len(blob) - 40], "truncated|locator"),
    ):
        rewrite(name, damaged)
        before = snapshot()
        with pytest.raises(CommandError, match=message):
            run("verify_backup", "--restore-file", name)
        assert snapshot() == before
    rewrite(name, blob)
    assert name in run("verify_backup", "--latest")
    out = run("backup", "--verify-after")
    assert "verified: pg_restore --list" in out


def test_a_restore_takes_a_safety_backup_that_brings_back_the_state_before_it():
    name = make_backup()
    Fractal.objects.create(name="made-after-the-backup")
    before_restore = snapshot()
    out = run("restore", "--restore-file", name, "--non-interactive")
    safety = out.strip().splitlines()[-1].split("safety backup ")[1].split()[0]
    assert safety.endswith("-pre-restore.strix-backup") and not Fractal.objects.filter(name="made-after-the-backup")
    run("restore", "--restore-file", safety, "--non-interactive", "--no-safety-backup")
    assert snapshot() == before_restore
    # Pruning keeps a safety backup for 7 days whatever the policy.
    run("backup", "--keep", "1")
    assert safety in {info.name for info in _listed()}
