"""The address a request came from, for login throttling."""

from django.conf import settings


def client_ip(request) -> str:
    """REMOTE_ADDR; behind a trusted reverse proxy (STRIX_TRUSTED_PROXY_HEADER set), the last address in
    X-Forwarded-For, the one that proxy appended (earlier entries are whatever the client claimed)."""
    if getattr(settings, "SECURE_PROXY_SSL_HEADER", None):
        forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
        if forwarded:
            return forwarded[-1]
    return request.META.get("REMOTE_ADDR", "")
