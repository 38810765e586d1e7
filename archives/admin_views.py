"""The fractal's Manage tab in the admin: Archives (Create Archive, Restore, Verify, Delete, Cancel),
Archive Schedule, restores and history, with live status. Thin: the services decide; these views only
translate requests into service calls and messages."""

from __future__ import annotations

import hashlib
import json
import uuid

from django.contrib import messages
from django.http import Http404, HttpResponseNotModified, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone

from archives import services
from archives.models import Archive, ArchiveEvent, ArchiveSearch, FractalClaim, RestoreJob
from archives.services import holds
from archives.services.delete import archives_to_prune, prune_warning
from archives.services.schedule import next_due, set_schedule
from archives.services.visibility import present_restores
from strix import logstore
from strix.errors import OperatorError
from strix.fractals.models import ArchiveSchedule, Fractal

RESTORES_SHOWN = 20
SEARCHES_SHOWN = 20
# The newest archives shown unless "Show all" is asked for (?archives=all): a page of 1,000 rows
# helps no one and costs a second to render.
ARCHIVES_SHOWN = 100
EVENTS_SHOWN = 50
MAX_ARCHIVES_LIMIT = 100_000


def uuid_or_404(value) -> uuid.UUID:
    """An id from a form or query; anything but a UUID names nothing that exists (404)."""
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except ValueError:
        raise Http404("No such object: that is not an id.") from None


def fractal_for(request, fractal_id) -> Fractal:
    """The fractal, if the user administers it; otherwise it does not exist for them (404)."""
    fractal = Fractal.objects.administered_by(request.user).filter(pk=uuid_or_404(fractal_id)).first()
    if fractal is None:
        raise Http404("No such fractal.")
    return fractal


def step_context(request, admin_site, fractal: Fractal, title: str, **extra) -> dict:
    """What every page of the Manage tab's steps shows: the admin's frame, with the fractal as the object."""
    return {
        **admin_site.each_context(request),
        "title": title,
        "fractal": fractal,
        "original": fractal,
        "opts": Fractal._meta,
        **extra,
    }


def manage_url(fractal) -> str:
    return reverse("admin:fractals_fractal_manage", args=[fractal.pk])


def _restores(request, fractal: Fractal):
    """Restores into this fractal and from its archives (a restore shows on both tabs), each showing the
    user only what they administer of its other side (visibility.py)."""
    jobs = RestoreJob.objects.filter(target=fractal) | RestoreJob.objects.filter(source_fractal=fractal)
    jobs = jobs.select_related("archive", "target", "requested_by", "source_fractal").order_by("-created_at")
    return present_restores(request.user, jobs[:RESTORES_SHOWN])


def _rows_context(request, fractal: Fractal) -> dict:
    claim = FractalClaim.objects.filter(fractal=fractal).first()
    everything = Archive.objects.filter(fractal=fractal).select_related("requested_by")
    show_all = request.GET.get("archives") == "all"
    archives = list(everything if show_all else everything[: ARCHIVES_SHOWN + 1])
    archives_total = len(archives) if show_all or len(archives) <= ARCHIVES_SHOWN else everything.count()
    archives = archives[: len(archives) if show_all else ARCHIVES_SHOWN]
    reading = set(
        RestoreJob.objects.filter(archive__in=archives, status__in=RestoreJob.ACTIVE).values_list(
            "archive_id", flat=True
        )
    )
    searching = set(
        ArchiveSearch.objects.filter(archive__in=archives, status=ArchiveSearch.Status.SEARCHING).values_list(
            "archive_id", flat=True
        )
    )
    restores = _restores(request, fractal)
    searches = list(
        ArchiveSearch.objects.filter(archive__fractal=fractal).select_related("archive", "requested_by")[
            :SEARCHES_SHOWN
        ]
    )
    busy = busy_reason(claim)
    hold = holds.active_legal_hold(fractal.pk)
    held = f"Disabled: the fractal is under legal hold ({hold.reason}); release the hold first." if hold else ""
    for archive in archives:
        # While the fractal is busy its archives' actions wait too (an archive ends by pruning).
        archive.in_use_reason = _in_use_reason(archive, reading) or busy
        # Searches only read: they stop a deletion, not a restore or a verify beside them.
        searched = "Disabled: a search is reading this archive." if archive.pk in searching else ""
        archive.delete_reason = archive.in_use_reason or searched or held
    return {
        "fractal": fractal,
        "active": bool(claim)
        or any(a.is_active or a.verification == Archive.Verification.VERIFYING for a in archives)
        or any(j.is_active for j in restores)
        or any(s.is_active for s in searches),
        "archives": archives,
        "archives_total": archives_total,
        "restores": restores,
        "searches": searches,
        "busy_reason": busy,
        "now": timezone.now(),
    }


def busy_reason(claim) -> str:
    """Why the fractal's actions wait while ``claim`` (its FractalClaim, or None) holds it."""
    if claim is None:
        return ""
    what = "an archive" if claim.archive_id else "a restore" if claim.restore_id else "retention"
    return f"Disabled: {what} is running for this fractal."


def _in_use_reason(archive: Archive, reading: set) -> str:
    if archive.is_active:
        return "Disabled: this archive is still being made."
    if archive.pk in reading:
        return "Disabled: a restore is reading this archive."
    if archive.verification == Archive.Verification.VERIFYING:
        return "Disabled: this archive is being verified."
    return ""


def manage(request, fractal_id, admin_site):
    fractal = fractal_for(request, fractal_id)
    if request.method == "POST":
        response = _act(request, fractal, admin_site)
        if response is not None:
            return response
        return redirect(manage_url(fractal))
    return _page(request, fractal, admin_site)


def _page(request, fractal, admin_site, schedule_form=None, pending_prune=(), status=200):
    try:
        row_count = logstore.count_rows(str(fractal.id))
    except logstore.LogStoreError as e:
        row_count = None
        messages.error(request, str(e))
    context = {
        **admin_site.each_context(request),
        **_rows_context(request, fractal),
        "title": f"{fractal.name}: Manage",
        "original": fractal,
        "row_count": row_count,
        "schedules": ArchiveSchedule.choices,
        "schedule_form": schedule_form or {"schedule": fractal.archive_schedule, "max_archives": fractal.max_archives},
        "pending_prune": pending_prune,
        "next_due": next_due(fractal),
        "events": ArchiveEvent.objects.filter(fractal=fractal).select_related("user")[:EVENTS_SHOWN],
        "legal_hold": holds.active_legal_hold(fractal.pk),
        "restore_holds": holds.active_restore_holds(fractal).select_related("archive").order_by("-finished_at"),
        "last_retention": ArchiveEvent.objects.filter(fractal=fractal, action=ArchiveEvent.Action.RETENTION).first(),
        "opts": Fractal._meta,
    }
    return TemplateResponse(request, "admin/archives/manage.html", context, status=status)


def _archive_of(request, fractal) -> Archive:
    return get_object_or_404(Archive, pk=uuid_or_404(request.POST.get("archive")), fractal=fractal)


def _job_of(request, fractal):
    job_id = uuid_or_404(request.POST.get("job"))
    job = Archive.objects.filter(pk=job_id, fractal=fractal).first()
    if job is None:
        restores = RestoreJob.objects.filter(target=fractal) | RestoreJob.objects.filter(source_fractal=fractal)
        job = restores.filter(pk=job_id).first()
    if job is None:
        raise Http404("No such job.")
    return job


def _act(request, fractal: Fractal, admin_site):
    action = request.POST.get("action")
    try:
        if action == "archive":
            warning = prune_warning(fractal)  # before the new archive exists: it is the one counted
            full_read = request.POST.get("full_read") == "yes"
            archive = services.request_archive(request.user, fractal, full_read=full_read)
            messages.success(request, f"Archive {archive.short_id} queued.")
            if warning:
                messages.warning(request, warning)
        elif action == "verify":
            archive = services.request_verify(request.user, _archive_of(request, fractal))
            messages.success(request, f"Verifying archive {archive.short_id} in the background.")
        elif action == "delete":
            archive = _archive_of(request, fractal)
            services.delete_archive(request.user, archive)
            messages.success(request, f"Archive {archive.short_id} and its stored file were deleted.")
        elif action == "cancel":
            messages.success(request, services.cancel_job(request.user, _job_of(request, fractal)))
        elif action == "schedule":
            return _save_schedule(request, fractal, admin_site)
        elif action == "legal_hold":
            holds.set_legal_hold(request.user, fractal, request.POST.get("reason", ""))
            messages.success(
                request,
                f"Legal hold set on {fractal.name}: nothing of it is deleted or replaced until the hold is released.",
            )
        elif action == "release_legal_hold":
            holds.release_legal_hold(request.user, fractal, request.POST.get("reason", ""))
            messages.success(request, f"Legal hold on {fractal.name} released.")
        elif action == "release_hold":
            job = get_object_or_404(RestoreJob, pk=uuid_or_404(request.POST.get("job")), target=fractal)
            holds.release_restore_hold(request.user, job)
            messages.success(request, f"The hold of restore {job.short_id} was released; retention applies again.")
        else:
            messages.error(request, "Unknown action.")
    except OperatorError as e:
        messages.error(request, str(e))
    return None


def _save_schedule(request, fractal: Fractal, admin_site):
    schedule = request.POST.get("schedule", "")
    raw_max = request.POST.get("max_archives", "").strip()
    form = {"schedule": schedule, "max_archives": raw_max}
    max_archives = int(raw_max) if raw_max.isascii() and raw_max.isdigit() and len(raw_max) <= 6 else raw_max or None
    if max_archives is not None and not (isinstance(max_archives, int) and 1 <= max_archives <= MAX_ARCHIVES_LIMIT):
        messages.error(request, f"Maximum Archives must be a whole number from 1 to {MAX_ARCHIVES_LIMIT:,}, or empty.")
        return _page(request, fractal, admin_site, schedule_form=form, status=400)
    # What the next archive will delete under the new limit (the new archive counted), asked about
    # when it differs from what the current limit would delete.
    beyond = archives_to_prune(fractal, max_archives or 0, upcoming=1)
    changed = beyond != archives_to_prune(fractal, upcoming=1)
    if beyond and changed and request.POST.get("confirm_prune") != "yes":
        return _page(request, fractal, admin_site, schedule_form=form, pending_prune=beyond)
    set_schedule(request.user, fractal, schedule, max_archives)
    note = f"; the next archive deletes the {len(beyond)} oldest" if beyond else ""
    messages.success(request, f"Archive Schedule saved: {fractal.get_archive_schedule_display()}{note}.")
    return None


def status(request, fractal_id):
    """Live status for the Manage tab: the rows, the header and History as HTML (swapped in place) and
    each job's state. ``active`` tells the page how soon to ask again; an unchanged state is answered
    304 (its ETag is a digest of the state, not of the HTML, whose CSRF tokens differ every time), so
    an idle tab costs next to nothing."""
    fractal = fractal_for(request, fractal_id)
    context = _rows_context(request, fractal)
    context["events"] = list(ArchiveEvent.objects.filter(fractal=fractal).select_related("user")[:EVENTS_SHOWN])
    try:
        row_count = f"{logstore.count_rows(str(fractal.id)):,}"
    except logstore.LogStoreError:
        row_count = None
    jobs = [_job_state(job) for job in [*context["archives"], *context["restores"]]]
    searches = [(str(s.pk), s.status, s.matches, s.rows_scanned) for s in context["searches"]]
    state = [jobs, searches, row_count, context["busy_reason"], [e.pk for e in context["events"]]]
    etag = '"' + hashlib.sha256(json.dumps(state, default=str).encode()).hexdigest()[:32] + '"'
    if request.headers.get("If-None-Match") == etag:
        return HttpResponseNotModified(headers={"ETag": etag})
    response = JsonResponse(
        {
            "active": context["active"],
            "row_count": row_count,
            "events_html": render_to_string("admin/archives/_event_rows.html", context, request),
            "busy": bool(context["busy_reason"]),
            "busy_reason": context["busy_reason"],
            "archives_html": render_to_string("admin/archives/_archive_rows.html", context, request),
            "restores_html": render_to_string("admin/archives/_restore_rows.html", context, request),
            "searches_html": render_to_string("admin/archives/_search_rows.html", context, request),
            "jobs": jobs,
        }
    )
    response["ETag"] = etag
    return response


def _job_state(job) -> dict:
    return {
        "id": str(job.pk),
        "short_id": job.short_id,
        "kind": "archive" if isinstance(job, Archive) else "restore",
        "status": job.status,
        "label": job.state_label,
        "verification": getattr(job, "verification", ""),
        "progress_rows": job.progress_rows,
        "expected_rows": job.expected_rows,
        "error": getattr(job, "shown_error", job.error),
        "phase": job.phase,
        "delete_reason": getattr(job, "delete_reason", ""),
    }
