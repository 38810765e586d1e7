"""Deleting an archive (its stored file and its record), by a user or by ``max_archives`` pruning."""

from __future__ import annotations

import logging

from django.db import transaction

from archives.models import Archive, ArchiveEvent, ArchiveSearch, RestoreJob
from archives.services.claims import Claim, require
from archives.services.errors import ArchiveInUse, require_admin
from archives.services.history import record_event
from archives.services.holds import active_legal_hold, refuse_under_legal_hold
from archives.services.search_jobs import delete_results_of
from strix.fractals.models import Fractal
from strix.storage import get_store

log = logging.getLogger(__name__)


def delete_archive(user, archive: Archive, claim: Claim | None = None) -> None:
    """Remove the file, then the record; refused while the archive is being made or read.

    ``user=None`` is the system itself (pruning by ``max_archives``), which deletes only while its
    ``claim`` still holds the fractal.
    """
    if user is not None:
        require_admin(user, archive.fractal)
    with transaction.atomic():
        archive = Archive.objects.select_for_update().get(pk=archive.pk)
        if archive.is_active:
            raise ArchiveInUse(f"archive {archive.id} is still {archive.status}; wait for it to finish.")
        if RestoreJob.objects.filter(archive=archive, status__in=RestoreJob.ACTIVE).exists():
            raise ArchiveInUse(f"a restore is reading archive {archive.id}; delete it after the restore has finished.")
        # A pending search is simply deleted with the archive; a running one is reading the file.
        if ArchiveSearch.objects.filter(archive=archive, status=ArchiveSearch.Status.SEARCHING).exists():
            raise ArchiveInUse(
                f"a search is reading archive {archive.short_id}; delete it when the search has finished."
            )
        if Archive.objects.filter(copied_from=archive.pk, status__in=Archive.ACTIVE).exists():
            raise ArchiveInUse(
                f"a new archive is copying unchanged days from archive {archive.short_id}; delete it when "
                "that archive has finished."
            )
        if archive.verification == Archive.Verification.VERIFYING:
            raise ArchiveInUse(f"archive {archive.short_id} is being verified; delete it when that has finished.")
        refuse_under_legal_hold(archive.fractal_id, f"deleting archive {archive.short_id}")
        if claim is not None:
            require(claim)
        searches = delete_results_of(archive)  # search results are copies of the archive's rows
        if archive.file_name:
            get_store("archives").delete(archive.file_name)
        described = describe_archive(archive)  # its id is gone with the record
        archive.delete()
    with_searches = f", with its {searches} search(es)" if searches else ""
    if user is not None:
        record_event(archive.fractal_id, ArchiveEvent.Action.DELETE, "deleted", f"{described}{with_searches}", user)
    elif searches:
        record_event(archive.fractal_id, ArchiveEvent.Action.DELETE, "deleted", f"{searches} search(es) of {described}")


def describe_archive(archive: Archive) -> str:
    """How History names an archive: its short id, kind and time range (kept after its deletion)."""
    span = ""
    if archive.time_start is not None:
        span = f", {archive.time_start:%Y-%m-%d %H:%M} – {archive.time_end:%Y-%m-%d %H:%M} UTC"
    return f"archive {archive.short_id} ({archive.kind}{span})"


def archives_to_prune(fractal: Fractal, max_archives: int | None = None, upcoming: int = 0) -> list[Archive]:
    """The completed archives that Maximum Archives (``max_archives``, else the fractal's) deletes, oldest
    first — counting ``upcoming`` archives not completed yet: what the next archive will delete is
    ``archives_to_prune(fractal, upcoming=1)``. The one rule behind pruning and every warning of it."""
    limit = fractal.max_archives if max_archives is None else max_archives
    if not limit:
        return []
    completed = Archive.objects.filter(fractal=fractal, status=Archive.Status.COMPLETED).order_by("-created_at")
    return list(reversed(completed[max(limit - upcoming, 0) :]))


def prune_warning(fractal: Fractal, max_archives: int | None = None) -> str:
    """What the next archive will delete under Maximum Archives, in a sentence ("" when nothing)."""
    doomed = archives_to_prune(fractal, max_archives, upcoming=1)
    if not doomed:
        return ""
    names = ", ".join(f"{a.short_id} ({a.created_at:%Y-%m-%d %H:%M})" for a in doomed)
    limit = fractal.max_archives if max_archives is None else max_archives
    hold = active_legal_hold(fractal.pk)
    if hold is not None:
        return (
            f"Maximum Archives {limit}: the next archive would delete {len(doomed)} of the oldest ({names}), but "
            f"the fractal is under legal hold ({hold.reason}): pruning is skipped until it is released."
        )
    return f"Maximum Archives {limit}: the next archive deletes the {len(doomed)} oldest: {names}."


def prune_archives(fractal: Fractal, claim: Claim) -> list[str]:
    """Delete the oldest completed archives (manual and scheduled alike) beyond ``max_archives``.

    Run by an archive's worker after its archive completed, while it still holds the fractal.
    """
    doomed = archives_to_prune(fractal)
    if not doomed:
        return []
    hold = active_legal_hold(fractal.pk)
    if hold is not None:
        beyond = len(doomed)
        if beyond:
            log.info("pruning of %s skipped: the fractal is under legal hold", fractal.name)
            detail = (
                f"Maximum Archives {fractal.max_archives}: kept {beyond} archive(s) beyond it; the fractal is under "
                f"legal hold ({hold.reason})"
            )
            record_event(fractal.pk, ArchiveEvent.Action.PRUNE, "skipped", detail)
        return []
    deleted = []
    for archive in doomed:
        try:
            delete_archive(None, archive, claim)
            deleted.append(str(archive.id))
        except ArchiveInUse as e:  # a restore is reading it: the next archive's pruning gets it
            log.info("kept archive %s beyond max_archives of %s: %s", archive.id, fractal.name, e)
    if deleted:
        log.info("pruned %d archives of %s (max_archives=%d)", len(deleted), fractal.name, fractal.max_archives)
        names = ", ".join(archive_id[:8] for archive_id in deleted)
        detail = f"Maximum Archives {fractal.max_archives}: deleted the oldest, {names}"
        record_event(fractal.pk, ArchiveEvent.Action.PRUNE, "deleted", detail)
    return deleted
