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


def _has_token(request) -> bool:
    """Whether the request carries ``Authorization: Bearer STRIX_METRICS_TOKEN``; never without a token
    configured. Compared as bytes, so that any header (non-ASCII included) is simply wrong."""
    token = settings.STRIX_METRICS_TOKEN
    given = request.headers.get("Authorization", "").encode("utf-8", "surrogateescape")
    return bool(token) and hmac.compare_digest(given, f"Bearer {token}".encode())


def readyz(request):
    """One line of JSON per component; 200 when all are up, 503 naming what is not. Only the token's
    holder sees the details (addresses, paths, database, key id); the public sees names and states."""
    components = health.readiness()
    detailed = _has_token(request)
    body = "".join((c.to_json() if detailed else c.to_public_json()) + "\n" for c in components)
    status = 200 if all(component.ok for component in components) else 503
    return HttpResponse(body, status=status, content_type="application/x-ndjson")


def metrics_view(request):
    if not _has_token(request):
        return HttpResponse("a bearer token is required (STRIX_METRICS_TOKEN)\n", status=401)
    return HttpResponse(metrics.render(), content_type=CONTENT_TYPE_LATEST)
