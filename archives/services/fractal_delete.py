"""Deleting a fractal without orphaning anything of it.

A fractal is deleted with its log rows, in one claimed operation: the rows go first (a fenced DELETE
while the fractal is claimed, so no archive, restore or retention runs beside it), then the record.
It is refused while anything would be lost or left behind: an active legal hold, a restore's hold on
its rows, archives (evidence: delete them one by one, each deletion recorded in History), restores
recorded into it, or a running operation.
"""

from __future__ import annotations

import logging

from django.db import transaction

from archives.models import Archive, FractalClaim, RestoreJob
from archives.services.claims import maintenance_claim, require
from archives.services.errors import ArchiveError, require_admin
from archives.services.history import who
from archives.services.holds import active_legal_hold, active_restore_holds
from strix import locks, logstore
from strix.fractals.models import Fractal

log = logging.getLogger(__name__)


class FractalNotDeletable(ArchiveError):
    pass


def deletion_blockers(fractal: Fractal, claimed: bool = False) -> list[str]:
    """Why ``fractal`` cannot be deleted now, one sentence each; empty when it can. ``claimed``: the
    caller holds the fractal's claim itself."""
    reasons = []
    hold = active_legal_hold(fractal.pk)
    if hold is not None:
        reasons.append(
            f"fractal {fractal.name} is under legal hold since {hold.set_at:%Y-%m-%d %H:%M} UTC, set by "
            f"{who(hold.set_by)} ({hold.reason}); release the hold first."
        )
    held = active_restore_holds(fractal).count()
    if held:
        reasons.append(
            f"{held} restore(s) into fractal {fractal.name} hold their rows; release them on its Manage tab."
        )
    archives = Archive.objects.filter(fractal=fractal).count()
    if archives:
        reasons.append(f"fractal {fractal.name} has {archives} archive(s); delete them on its Manage tab first.")
    if RestoreJob.objects.filter(target=fractal).exists():
        reasons.append(f"restores were recorded into fractal {fractal.name}; it is kept with their records.")
    if not claimed and FractalClaim.objects.filter(fractal=fractal).exists():
        reasons.append(f"an operation is running for fractal {fractal.name}; try again when it has finished.")
    return reasons


def delete_fractal(user, fractal: Fractal) -> int:
    """Delete the fractal's log rows and then its record, while holding it; returns the rows deleted.

    Raises :class:`FractalNotDeletable` naming every reason it cannot be deleted."""
    if user is not None:
        require_admin(user, fractal)
    try:
        with maintenance_claim(fractal) as claim:
            reasons = deletion_blockers(fractal, claimed=True)
            if reasons:
                raise FractalNotDeletable(f"fractal {fractal.name} cannot be deleted: {' '.join(reasons)}")
            rows = logstore.count_rows(str(fractal.pk))
            if rows:
                logstore.delete_rows(str(fractal.pk), claim.fence)
            with transaction.atomic():
                require(claim)
                fractal.delete()
    except locks.FractalBusy:
        raise FractalNotDeletable(
            f"fractal {fractal.name} cannot be deleted: an operation is running for it; try again when it has finished."
        ) from None
    log.warning("fractal %s (%s) deleted by %s with its %d log rows", fractal.name, fractal.pk, who(user), rows)
    return rows
