"""What Django's debug page and error reports may show of settings and the request's environment."""

import re

from django.views.debug import SafeExceptionReporterFilter


class SecretsHidingFilter(SafeExceptionReporterFilter):
    """Hides, besides Django's own list (keys, passwords, tokens…), every URL and DSN — they carry
    credentials (DATABASE_URL, STRIX_REDIS_URL, STRIX_CLICKHOUSE_URL) — and anything named AUTH or
    CREDENTIAL. Runserver hands the whole process environment to the page as request.META."""

    hidden_settings = re.compile(r"API|TOKEN|KEY|SECRET|PASS|SIGNATURE|HTTP_COOKIE|URL|DSN|AUTH|CREDENTIAL", re.I)
