"""What of a restore between two fractals a user may see: everything of the fractals they administer,
and of the other side only that there is one ("another fractal"). A restore's error and requester may
name either side, so they show only to a user who administers both."""

from __future__ import annotations

from archives.models import RestoreJob
from strix.fractals.models import Fractal

ANOTHER_FRACTAL = "another fractal"
HIDDEN_ERROR = "details are shown to admins of both fractals"


def present_restores(user, jobs) -> list[RestoreJob]:
    """Give each job, for ``user``: ``source_name`` and ``target_name`` (or "another fractal"),
    ``sees_target`` and ``sees_both``, ``shown_error`` and ``shown_requester``. One query in all."""
    jobs = list(jobs)
    ids = {job.target_id for job in jobs} | {job.source_fractal_id for job in jobs if job.source_fractal_id}
    visible = set(Fractal.objects.administered_by(user).filter(pk__in=ids).values_list("pk", flat=True))
    for job in jobs:
        source = job.source_fractal  # kept when the archive itself is deleted
        sees_source = source is not None and source.pk in visible
        job.sees_target = job.target_id in visible
        job.sees_both = job.sees_target and (sees_source or source is None)
        job.source_name = source.name if sees_source else ANOTHER_FRACTAL if source is not None else ""
        job.target_name = job.target.name if job.sees_target else ANOTHER_FRACTAL
        job.shown_error = job.error if job.sees_both or not job.error else HIDDEN_ERROR
        job.shown_requester = str(job.requested_by or "system") if job.sees_both else "—"
    return jobs
