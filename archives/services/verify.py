"""Verify: re-authenticate an archive's stored file in the background, without touching any fractal.

The whole file is read and authenticated chunk by chunk; its header must be the record's (kind,
archive id, fractal id) and its trailer's rows the record's. The archive then shows "Verified (time)"
or "Damaged: reason"; a damaged archive cannot be restored.
"""

from __future__ import annotations

import logging

from django.utils import timezone

from archives.models import Archive, ArchiveEvent
from archives.services.errors import NotRestorable, require_admin
from archives.services.history import record_event
from archives.services.queue import VERIFY_TASK, enqueue_after_commit
from archives.services.stored_file import open_archive
from strix.errors import OperatorError

log = logging.getLogger(__name__)


def request_verify(user, archive: Archive, enqueue: bool = True) -> Archive:
    if user is not None:
        require_admin(user, archive.fractal)
    if archive.status != Archive.Status.COMPLETED:
        raise NotRestorable(f"archive {archive.short_id} is {archive.status}; only completed archives are verified.")
    Archive.objects.filter(pk=archive.pk).update(verification=Archive.Verification.VERIFYING)
    archive.verification = Archive.Verification.VERIFYING
    record_event(archive.fractal_id, ArchiveEvent.Action.VERIFY, "requested", f"archive {archive.short_id}", user)
    if enqueue:
        enqueue_after_commit(VERIFY_TASK, archive.id, archive.fractal.name)
    return archive


def run_verify(archive_id) -> Archive:
    archive = Archive.objects.get(pk=archive_id)
    try:
        with open_archive(archive) as stored:
            for _block in stored.blocks():  # authenticates every chunk, then the trailer and day index
                pass
    except OperatorError as e:
        mark_damaged(archive, str(e))
    else:
        Archive.objects.filter(pk=archive.pk).update(
            verification=Archive.Verification.VERIFIED, damage="", verified_at=timezone.now()
        )
        record_event(archive.fractal_id, ArchiveEvent.Action.VERIFY, "verified", f"archive {archive.short_id}")
    archive.refresh_from_db()
    return archive


def mark_damaged(archive: Archive, damage: str, consequence: str = "") -> None:
    """Record that ``archive``'s stored file failed authentication (``damage`` says how): the archive
    shows Damaged, cannot be restored, and raises an alert (alerts.py); History says so."""
    log.warning("archive %s is damaged: %s", archive.id, damage)
    Archive.objects.filter(pk=archive.pk).update(
        verification=Archive.Verification.DAMAGED, damage=damage, verified_at=timezone.now()
    )
    detail = f"archive {archive.short_id}: {damage}{'; ' + consequence if consequence else ''}"
    record_event(archive.fractal_id, ArchiveEvent.Action.VERIFY, "damaged", detail)
