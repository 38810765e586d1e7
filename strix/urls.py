from django.contrib import admin
from django.urls import path
from django.views.generic import RedirectView

from strix import health_views

admin.site.site_header = "Strix Data Protection"
admin.site.site_title = "Strix Data Protection"

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", admin.site.urls),
    path("healthz", health_views.healthz, name="healthz"),
    path("readyz", health_views.readyz, name="readyz"),
    path("metrics", health_views.metrics_view, name="metrics"),
]
