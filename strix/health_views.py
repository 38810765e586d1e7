"""/healthz, /readyz and /metrics: thin views over strix.health and archives.services.metrics."""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST

from archives.services import metrics
from strix import health


def healthz(request):
    """The process is up and serving (no dependency is checked: that is /readyz)."""
    return HttpResponse('{"component": "process", "ok": true}\n', content_type="application/x-ndjson")


def readyz(request):
    """One line of JSON per component; 200 when all are up, 503 naming what is not."""
    components = health.readiness()
    body = "".join(component.to_json() + "\n" for component in components)
    status = 200 if all(component.ok for component in components) else 503
    return HttpResponse(body, status=status, content_type="application/x-ndjson")


def metrics_view(request):
    token = settings.STRIX_METRICS_TOKEN
    if token and not hmac.compare_digest(request.headers.get("Authorization", ""), f"Bearer {token}"):
        return HttpResponse("a bearer token is required (STRIX_METRICS_TOKEN)\n", status=401)
    return HttpResponse(metrics.render(), content_type=CONTENT_TYPE_LATEST)
