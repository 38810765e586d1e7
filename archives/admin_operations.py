"""Operations: every archive and restore job the user may see, newest first, filtered by state, kind
and fractal. Read-only; the filters offer only fractals the user administers."""

from __future__ import annotations

from django.template.response import TemplateResponse

from archives.admin_views import uuid_or_404
from archives.models import Archive, RestoreJob
from archives.services.visibility import present_restores
from strix.fractals.models import Fractal

SHOWN = 200
# Up to this many fractals the filter is a list to pick from; beyond, a name to search for (a list of
# 10,000 fractals is neither usable nor quick to render).
FRACTAL_CHOICES = 200
STATES = ["pending", "archiving", "restoring", "completed", "failed", "cancelled", "missing"]


def operations(request, admin_site):
    administered = Fractal.objects.administered_by(request.user)
    state, kind, fractal_id, name = (request.GET.get(n, "") for n in ("state", "kind", "fractal", "fractal_name"))
    fractals = administered.filter(pk=uuid_or_404(fractal_id)) if fractal_id else administered
    if name:
        fractals = fractals.filter(name__icontains=name)
    choices = list(administered.order_by("name")[: FRACTAL_CHOICES + 1])
    archives = Archive.objects.filter(fractal__in=fractals).select_related("fractal", "requested_by")
    restores = RestoreJob.objects.filter(target__in=fractals).select_related("target", "archive", "requested_by")
    if state:
        archives, restores = archives.filter(status=state), restores.filter(status=state)
    jobs = []
    if kind in ("", "archive"):
        jobs += [("Archive", job, job.fractal, job.row_count) for job in archives[:SHOWN]]
    if kind in ("", "restore"):
        jobs += [
            ("Restore", job, job.target, job.rows_restored) for job in present_restores(request.user, restores[:SHOWN])
        ]
    jobs.sort(key=lambda row: row[1].created_at, reverse=True)
    context = {
        **admin_site.each_context(request),
        "title": "Operations",
        "jobs": jobs[:SHOWN],
        "fractals": choices if len(choices) <= FRACTAL_CHOICES else None,
        "states": STATES,
        "chosen": {"state": state, "kind": kind, "fractal": fractal_id, "fractal_name": name},
    }
    return TemplateResponse(request, "admin/archives/operations.html", context)
