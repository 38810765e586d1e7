from django.contrib import admin, messages
from django.urls import path, reverse
from django.utils.html import format_html

from archives import admin_operations, admin_restore, admin_search, admin_views
from archives.models import Archive, ArchiveEvent, RestoreJob
from archives.services import fractal_delete
from archives.services.delete import prune_warning
from archives.services.history import record_event
from archives.services.visibility import present_restores
from strix import logstore
from strix.fractals.admin import FractalAdmin
from strix.fractals.models import Fractal


class ReadOnlyScopedAdmin(admin.ModelAdmin):
    """Records are made and changed by the services only; a user sees those of fractals they administer."""

    fractal_field = "fractal"

    def get_queryset(self, request):
        administered = Fractal.objects.administered_by(request.user)
        return super().get_queryset(request).filter(**{f"{self.fractal_field}__in": administered})

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # deleting goes through the Manage page, which also removes the stored file

    def has_view_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_staff

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_staff


@admin.register(Archive)
class ArchiveAdmin(ReadOnlyScopedAdmin):
    list_display = ["created_at", "fractal", "kind", "state", "row_count", "size_bytes", "requested_by"]

    @admin.display(description="status", ordering="status")
    def state(self, archive):
        return archive.state_label

    # RelatedOnly: the filter lists only fractals the (scoped) list holds, never another's name.
    list_filter = ["status", "kind", ("fractal", admin.RelatedOnlyFieldListFilter)]


@admin.register(RestoreJob)
class RestoreJobAdmin(ReadOnlyScopedAdmin):
    """A restore into a fractal the user administers; its source shows only as far as they administer it."""

    fractal_field = "target"
    list_display = ["created_at", "target", "archive_id_only", "clear_existing", "state_label", "rows_restored"]
    list_filter = ["status", ("target", admin.RelatedOnlyFieldListFilter)]
    fields = readonly_fields = [
        "target", "source", "clear_existing", "status", "shown_error", "shown_requester", "created_at",
        "started_at", "finished_at", "rows_restored", "rows_skipped", "range_start", "range_end", "contains",
        "field_filter", "hold_start", "hold_end", "hold_until", "hold_released_at",
    ]  # fmt: skip

    def get_object(self, request, object_id, from_field=None):
        job = super().get_object(request, object_id, from_field)
        if job is not None:
            present_restores(request.user, [job])
        return job

    @admin.display(description="archive")
    def archive_id_only(self, job):
        return job.archive_short_id + ("" if job.archive_id else " (deleted)")

    @admin.display(description="archive")
    def source(self, job):
        return f"{job.archive_short_id} ({job.source_name})" + ("" if job.archive_id else " (deleted)")

    @admin.display(description="error")
    def shown_error(self, job):
        return job.shown_error

    @admin.display(description="requested by")
    def shown_requester(self, job):
        return job.shown_requester


admin.site.unregister(Fractal)


@admin.register(Fractal)
class FractalWithManageAdmin(FractalAdmin):
    """The fractal admin with its Manage page (archives, restores) and a link to it."""

    list_display = [*FractalAdmin.list_display, "manage_link"]

    @admin.display(description="")
    def manage_link(self, fractal):
        return format_html(
            '<a class="button" href="{}">Manage</a>', reverse("admin:fractals_fractal_manage", args=[fractal.pk])
        )

    def get_deleted_objects(self, objs, request):
        """The delete page (and "Delete selected") also lists the fractal's log rows, and refuses, with
        the reasons, a fractal whose deletion would lose or orphan anything (fractal_delete.py)."""
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        for fractal in objs:
            reasons = fractal_delete.deletion_blockers(fractal)
            if reasons:
                protected = [*protected, *reasons]
            else:
                rows = logstore.count_rows(str(fractal.pk))
                deleted = [*deleted, f"{rows:,} log rows of fractal {fractal.name} in ClickHouse"]
        return deleted, counts, perms_needed, protected

    def delete_model(self, request, obj):
        fractal_delete.delete_fractal(request.user, obj)

    def delete_queryset(self, request, queryset):
        for fractal in queryset:
            fractal_delete.delete_fractal(request.user, fractal)

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if change and {"archive_schedule", "max_archives"} & set(form.changed_data):
            detail = f"{obj.get_archive_schedule_display()}, max {obj.max_archives or 'all'} (settings form)"
            record_event(obj.pk, ArchiveEvent.Action.SCHEDULE, "saved", detail, request.user)
        if change and "max_archives" in form.changed_data and (warning := prune_warning(obj)):
            self.message_user(request, warning, messages.WARNING)

    def get_urls(self):
        wrap = self.admin_site.admin_view

        def with_site(view):
            """An admin view of ours that also renders the admin site's page context."""
            return wrap(lambda request, **kwargs: view(request, admin_site=self.admin_site, **kwargs))

        step = "<uuid:fractal_id>/manage/"
        return [
            path(step, with_site(admin_views.manage), name="fractals_fractal_manage"),
            path(f"{step}status/", wrap(admin_views.status), name="fractals_fractal_manage_status"),
            path("operations/", with_site(admin_operations.operations), name="archives_operations"),
            path(
                f"{step}restore/<uuid:archive_id>/",
                with_site(admin_restore.restore_step),
                name="fractals_fractal_restore",
            ),
            path(
                f"{step}restore/<uuid:archive_id>/summary/",
                wrap(admin_restore.restore_summary),
                name="fractals_fractal_restore_summary",
            ),
            path(
                f"{step}search/<uuid:archive_id>/", with_site(admin_search.search_step), name="fractals_fractal_search"
            ),
            path(
                f"{step}searches/<uuid:search_id>/",
                with_site(admin_search.search_result),
                name="fractals_fractal_search_result",
            ),
            path(
                f"{step}searches/<uuid:search_id>/download/",
                wrap(admin_search.search_download),
                name="fractals_fractal_search_download",
            ),
            *super().get_urls(),
        ]


def _app_list_with_operations(request, app_label=None, _default=admin.site.get_app_list):
    """The admin's app list (index and sidebar) with Operations under Archives: every archive and
    restore the user may see, one click from any admin page."""
    apps = _default(request, app_label)
    for app in apps:
        if app["app_label"] == "archives":
            app["models"].append(
                {
                    "name": "Operations",
                    "object_name": "Operations",
                    "admin_url": reverse("admin:archives_operations"),
                    "add_url": None,
                    "view_only": True,
                    "perms": {"view": True, "add": False, "change": False, "delete": False},
                }
            )
    return apps


admin.site.get_app_list = _app_list_with_operations
