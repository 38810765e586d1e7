"""The Restore step of the Manage tab: choose the target and the mode, read what will happen, confirm."""

from __future__ import annotations

from datetime import UTC, datetime

from django.conf import settings
from django.contrib import messages
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse

from archives import services
from archives.admin_views import busy_reason, fractal_for, manage_url, step_context
from archives.models import Archive
from archives.services.options import BadRestoreOptions, RestoreOptions
from archives.services.plan import plan_restore
from strix.errors import OperatorError
from strix.fractals.models import Fractal


def _time(text: str):
    """An HTML datetime-local value (2026-11-20T13:00), taken as UTC; empty: no bound."""
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise BadRestoreOptions(f"{text[:40]!r} is not a date and time like 2026-11-20T13:00 (UTC).") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def options_from(data) -> RestoreOptions:
    """The time range and filters of a restore or search form (From, to, Raw log contains, Field)."""
    return RestoreOptions.parse(
        _time(data.get("from", "")), _time(data.get("to", "")), data.get("contains", ""), data.get("field", "")
    )


def _plan_from(request, source: Fractal, archive: Archive, data):
    target = fractal_for(request, data.get("target") or source.pk)
    clear = data.get("clear_existing", "on" if request.method == "GET" and "target" not in data else "") == "on"
    return plan_restore(archive, target, clear, options_from(data))


def restore_step(request, fractal_id, archive_id, admin_site):
    source = fractal_for(request, fractal_id)
    archive = get_object_or_404(Archive, pk=archive_id, fractal=source)
    data = request.POST if request.method == "POST" else request.GET
    try:
        plan = _plan_from(request, source, archive, data)
    except OperatorError as e:
        if request.method != "POST":
            messages.error(request, str(e))
            return redirect(manage_url(source))
        # A refused form is answered with the step again, its error and 400; nothing was queued.
        plan = plan_restore(archive, source, False)
        return _step_page(request, admin_site, source, archive, plan, str(e))
    error = ""
    if request.method == "POST":
        if plan.needs_typed_name and request.POST.get("confirm_name", "").strip() != plan.target.name:
            error = f"Type the name of fractal {plan.target.name} to confirm that its logs are replaced."
        else:
            try:
                job = services.request_restore(
                    request.user, archive, plan.target, clear_existing=plan.clear_existing,
                    hold_days=_hold_days(request.POST.get("hold_days", "")), options=plan.options,
                )  # fmt: skip
            except OperatorError as e:
                error = str(e)
            else:
                how = "replacing the logs of" if plan.clear_existing else "appending to"
                messages.success(request, f"Restore {job.short_id} queued, {how} fractal {plan.target.name}.")
                return redirect(manage_url(source))
    return _step_page(request, admin_site, source, archive, plan, error)


def _step_page(request, admin_site, source: Fractal, archive: Archive, plan, error: str) -> TemplateResponse:
    context = step_context(
        request, admin_site, source, f"Restore archive {archive.short_id}",
        archive=archive, plan=plan, targets=_targets(request.user), error=error,
        hold_choices=HOLD_CHOICES, default_hold=str(settings.STRIX_RESTORE_HOLD_DAYS),
    )  # fmt: skip
    return TemplateResponse(request, "admin/archives/restore_step.html", context, status=400 if error else 200)


def _targets(user) -> list[Fractal]:
    """The fractals the user may restore into; one that is busy is offered disabled, with the reason."""
    targets = list(Fractal.objects.administered_by(user).select_related("claim"))
    for target in targets:
        claim = getattr(target, "claim", None)
        target.busy_reason = busy_reason(claim) if claim is not None else ""
    return targets


HOLD_CHOICES = [("7", "7 days"), ("14", "14 days"), ("30", "30 days"), ("90", "90 days"), ("forever", "until removed")]


def _hold_days(value: str):
    """The chosen hold: days, None for "until removed", or the default (STRIX_RESTORE_HOLD_DAYS) when
    none was chosen; anything else is passed on for the service to refuse."""
    if value == "forever":
        return None
    if not value:
        return "default"
    return int(value) if value.isascii() and value.isdigit() and len(value) <= 9 else value


def restore_summary(request, fractal_id, archive_id):
    """The summary for the chosen target and mode, recomputed as the user changes them."""
    source = fractal_for(request, fractal_id)
    archive = get_object_or_404(Archive, pk=archive_id, fractal=source)
    try:
        plan = _plan_from(request, source, archive, request.GET)
    except OperatorError as e:
        return JsonResponse({"summary": str(e), "needs_typed_name": False, "target": ""})
    return JsonResponse(
        {"summary": plan.summary(), "needs_typed_name": plan.needs_typed_name, "target": plan.target.name}
    )
