"""Search an archive from the Manage tab: the search step (what to look for), the result page (the
first 1,000 matches) and the NDJSON download, each a thin view over archives.services.search_jobs."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse

from archives.admin_restore import options_from
from archives.admin_views import fractal_for, manage_url, step_context
from archives.models import Archive, ArchiveSearch
from archives.services import search_jobs
from strix.errors import OperatorError
from strix.fractals.models import Fractal


def search_step(request, fractal_id, archive_id, admin_site):
    fractal = fractal_for(request, fractal_id)
    archive = get_object_or_404(Archive, pk=archive_id, fractal=fractal)
    error = ""
    if request.method == "POST":
        try:
            search = search_jobs.request_search(request.user, archive, options_from(request.POST))
        except OperatorError as e:
            error = str(e)
        else:
            messages.success(request, f"Search {search.short_id} queued; its matches appear under Searches.")
            return redirect(manage_url(fractal))
    form = request.POST if request.method == "POST" else {}
    context = step_context(
        request, admin_site, fractal, f"Search archive {archive.short_id}", archive=archive, form=form, error=error
    )
    return TemplateResponse(request, "admin/archives/search_step.html", context, status=400 if error else 200)


def _search_of(request, fractal_id, search_id) -> tuple[Fractal, ArchiveSearch]:
    fractal = fractal_for(request, fractal_id)
    search = ArchiveSearch.objects.filter(pk=search_id, archive__fractal=fractal).select_related("archive").first()
    if search is None:
        raise Http404("No such search.")
    return fractal, search


def search_result(request, fractal_id, search_id, admin_site):
    fractal, search = _search_of(request, fractal_id, search_id)
    try:
        rows = search_jobs.preview(search)
    except OperatorError as e:
        messages.error(request, str(e))
        return redirect(manage_url(fractal))
    context = step_context(request, admin_site, fractal, f"Search {search.short_id}", search=search, rows=rows)
    return TemplateResponse(request, "admin/archives/search_result.html", context)


def search_download(request, fractal_id, search_id):
    fractal, search = _search_of(request, fractal_id, search_id)
    try:
        search_jobs.require_result(search)
    except OperatorError as e:
        messages.error(request, str(e))
        return redirect(manage_url(fractal))
    response = StreamingHttpResponse(search_jobs.result_blocks(search), content_type="application/x-ndjson")
    name = f"{fractal.name}-search-{search.short_id}.ndjson"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
