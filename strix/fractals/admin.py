from django.contrib import admin
from django.http import Http404

from strix.fractals.models import Fractal, FractalMembership


class MembershipInline(admin.TabularInline):
    model = FractalMembership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Fractal)
class FractalAdmin(admin.ModelAdmin):
    list_display = ["name", "retention_days", "archive_schedule", "max_archives", "created_at"]
    search_fields = ["name", "description"]
    readonly_fields = ["id", "created_at"]
    inlines = [MembershipInline]

    def get_queryset(self, request):
        # A staff user sees only the fractals they administer; others are simply absent (404).
        return Fractal.objects.administered_by(request.user)

    def get_object(self, request, object_id, from_field=None):
        # Django would redirect to the index for an object outside the queryset; a fractal the user
        # does not administer is simply not found.
        obj = super().get_object(request, object_id, from_field)
        if obj is None:
            raise Http404("No such fractal.")
        return obj

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_staff

    def has_view_permission(self, request, obj=None):
        return self._administers(request, obj)

    def has_change_permission(self, request, obj=None):
        return self._administers(request, obj)

    def has_delete_permission(self, request, obj=None):
        return self._administers(request, obj)

    def has_add_permission(self, request):
        # Creating a fractal hands out administration of it, so only superusers may.
        return request.user.is_superuser

    def _administers(self, request, obj):
        if not (request.user.is_active and request.user.is_staff):
            return False
        if obj is None:
            return True
        return obj.is_administered_by(request.user)
