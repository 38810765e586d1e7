"""The fractal "Manage" page of the admin: archive now, restore, delete, with live status. Thin: the
services decide; these views only translate requests and messages."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import reverse

from archives import services
from archives.models import Archive, RestoreJob
from strix import logstore
from strix.errors import OperatorError
from strix.fractals.models import Fractal


def _fractal_for(request, fractal_id) -> Fractal:
    fractal = Fractal.objects.administered_by(request.user).filter(pk=fractal_id).first()
    if fractal is None:
        raise Http404("No such fractal.")
    return fractal


def manage(request, fractal_id, admin_site):
    fractal = _fractal_for(request, fractal_id)
    if request.method == "POST":
        _act(request, fractal)
        return redirect(reverse("admin:fractals_fractal_manage", args=[fractal.pk]))
    try:
        row_count = logstore.count_rows(str(fractal.id))
    except logstore.LogStoreError as e:
        row_count = None
        messages.error(request, str(e))
    context = {
        **admin_site.each_context(request),
        "title": f"Manage {fractal.name}",
        "fractal": fractal,
        "row_count": row_count,
        "archives": Archive.objects.filter(fractal=fractal).select_related("requested_by"),
        "restores": RestoreJob.objects.filter(target=fractal).select_related("archive", "requested_by")[:20],
        "targets": Fractal.objects.administered_by(request.user),
        "opts": Fractal._meta,
        "busy": hasattr(fractal, "claim"),
    }
    return TemplateResponse(request, "admin/archives/manage.html", context)


def _act(request, fractal: Fractal) -> None:
    action = request.POST.get("action")
    try:
        if action == "archive":
            archive = services.request_archive(request.user, fractal)
            messages.success(request, f"Archive {archive.id} queued.")
        elif action == "restore":
            archive = get_object_or_404(Archive, pk=request.POST.get("archive"), fractal=fractal)
            target = _fractal_for(request, request.POST.get("target") or fractal.pk)
            append = request.POST.get("mode") == "append"
            job = services.request_restore(request.user, archive, target=target, clear_existing=not append)
            how = "appended to" if append else "replacing the logs of"
            messages.success(request, f"Restore {job.id} queued, {how} fractal {target.name}.")
        elif action == "delete":
            archive = get_object_or_404(Archive, pk=request.POST.get("archive"), fractal=fractal)
            services.delete_archive(request.user, archive)
            messages.success(request, f"Archive {archive.id} and its file were deleted.")
        else:
            messages.error(request, "Unknown action.")
    except OperatorError as e:
        messages.error(request, str(e))


def status(request, fractal_id):
    """Live status of the fractal's jobs, polled by the Manage page."""
    fractal = _fractal_for(request, fractal_id)
    fields = ("id", "status", "progress_rows", "expected_rows", "error")
    archives = Archive.objects.filter(fractal=fractal).values(*fields)
    restores = RestoreJob.objects.filter(target=fractal).values(*fields)[:20]
    return JsonResponse(
        {
            "busy": hasattr(fractal, "claim"),
            "jobs": [{**job, "id": str(job["id"])} for job in [*archives, *restores]],
        }
    )
