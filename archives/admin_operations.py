"""Operations: every archive and restore job the user may see, newest first, filtered by state, kind
and fractal. Read-only; the filters offer only fractals the user administers."""

from __future__ import annotations

from django.template.response import TemplateResponse

from archives.models import Archive, RestoreJob
from strix.fractals.models import Fractal

SHOWN = 200
STATES = ["pending", "archiving", "restoring", "completed", "failed", "cancelled"]


def operations(request, admin_site):
    administered = Fractal.objects.administered_by(request.user)
    state, kind, fractal_id = (request.GET.get(name, "") for name in ("state", "kind", "fractal"))
    fractals = administered.filter(pk=fractal_id) if fractal_id else administered
    archives = Archive.objects.filter(fractal__in=fractals).select_related("fractal", "requested_by")
    restores = RestoreJob.objects.filter(target__in=fractals).select_related("target", "archive", "requested_by")
    if state:
        archives, restores = archives.filter(status=state), restores.filter(status=state)
    jobs = []
    if kind in ("", "archive"):
        jobs += [("Archive", job, job.fractal, job.row_count) for job in archives[:SHOWN]]
    if kind in ("", "restore"):
        jobs += [("Restore", job, job.target, job.rows_restored) for job in restores[:SHOWN]]
    jobs.sort(key=lambda row: row[1].created_at, reverse=True)
    context = {
        **admin_site.each_context(request),
        "title": "Operations",
        "jobs": jobs[:SHOWN],
        "fractals": administered,
        "states": STATES,
        "chosen": {"state": state, "kind": kind, "fractal": fractal_id},
    }
    return TemplateResponse(request, "admin/archives/operations.html", context)
