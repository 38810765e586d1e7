from django.contrib import admin
from django.urls import path, reverse
from django.utils.html import format_html

from archives import admin_operations, admin_restore, admin_views
from archives.models import Archive, ArchiveEvent, RestoreJob
from archives.services.history import record_event
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
    list_display = ["created_at", "fractal", "kind", "status", "row_count", "size_bytes", "requested_by"]
    # RelatedOnly: the filter lists only fractals the (scoped) list holds, never another's name.
    list_filter = ["status", "kind", ("fractal", admin.RelatedOnlyFieldListFilter)]


@admin.register(RestoreJob)
class RestoreJobAdmin(ReadOnlyScopedAdmin):
    fractal_field = "target"
    list_display = ["created_at", "target", "archive", "clear_existing", "status", "rows_restored", "requested_by"]
    list_filter = ["status", ("target", admin.RelatedOnlyFieldListFilter)]


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

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if change and {"archive_schedule", "max_archives"} & set(form.changed_data):
            detail = f"{obj.get_archive_schedule_display()}, max {obj.max_archives or 'all'} (settings form)"
            record_event(obj.pk, ArchiveEvent.Action.SCHEDULE, "saved", detail, request.user)

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path(
                "<uuid:fractal_id>/manage/",
                wrap(lambda request, fractal_id: admin_views.manage(request, fractal_id, self.admin_site)),
                name="fractals_fractal_manage",
            ),
            path("<uuid:fractal_id>/manage/status/", wrap(admin_views.status), name="fractals_fractal_manage_status"),
            path(
                "operations/",
                wrap(lambda request: admin_operations.operations(request, self.admin_site)),
                name="archives_operations",
            ),
            path(
                "<uuid:fractal_id>/manage/restore/<uuid:archive_id>/",
                wrap(
                    lambda request, fractal_id, archive_id: admin_restore.restore_step(
                        request, fractal_id, archive_id, self.admin_site
                    )
                ),
                name="fractals_fractal_restore",
            ),
            path(
                "<uuid:fractal_id>/manage/restore/<uuid:archive_id>/summary/",
                wrap(admin_restore.restore_summary),
                name="fractals_fractal_restore_summary",
            ),
            *super().get_urls(),
        ]
