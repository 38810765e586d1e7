"""Settings of Strix Data Protection. Every knob comes from the environment or ``.env``.

``.env`` is read from ``STRIX_INSTALL_DIR`` (default: the checkout), never overriding variables
already set in the process environment.
"""

import os
from datetime import timedelta
from pathlib import Path

from kombu import Queue

from strix.envconfig import (
    clickhouse_cluster_from_env,
    clickhouse_from_env,
    database_from_env,
    env_bool,
    env_float,
    env_int,
    env_list,
    env_raw,
    env_str,
    load_env_file,
    storage_backends,
)

BASE_DIR = Path(__file__).resolve().parent.parent
INSTALL_DIR = Path(os.environ.get("STRIX_INSTALL_DIR") or BASE_DIR).resolve()
load_env_file(INSTALL_DIR / ".env")

APP_VERSION = "0.2.0"  # keep equal to pyproject.toml; container format 2 is written since 0.2.0

DEBUG = env_bool("DJANGO_DEBUG", False)
SECRET_KEY = env_str("DJANGO_SECRET_KEY", "dev-only-insecure-secret-key" if DEBUG else None)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS") or ["127.0.0.1", "localhost"]
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_celery_beat",
    "axes",  # login throttling (see "Logins" below)
    "strix.fractals",
    "archives",
    "backups",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Serves the admin's static files under gunicorn in production (runserver does it in development).
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "strix.middleware.RejectNulCharacters",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # last, as django-axes asks
]

# --- Logins and passwords -------------------------------------------------------------------------
# django-axes: after STRIX_LOGIN_FAILURE_LIMIT wrong passwords for one user from one address, that
# user is locked out from that address for STRIX_LOGIN_LOCKOUT_MINUTES; further attempts are refused
# without checking the password (429). Admins unlock under Axes › Access attempts (delete the rows),
# or `manage.py axes_reset_username USER`.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = env_int("STRIX_LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_float("STRIX_LOGIN_LOCKOUT_MINUTES", 15.0, minimum=0.1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False
# Behind a trusted proxy the client's address is the last one the proxy added to X-Forwarded-For.
AXES_CLIENT_IP_CALLABLE = "strix.request_ip.client_ip"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": env_int("STRIX_PASSWORD_MIN_LENGTH", 12, minimum=8)},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- HTTPS ----------------------------------------------------------------------------------------
# One switch for a site served over HTTPS: Secure cookies, HSTS and a redirect from plain HTTP. Behind
# a TLS-terminating reverse proxy, STRIX_TRUSTED_PROXY_HEADER names the header it sets to "https"
# (X-Forwarded-Proto); the proxy must overwrite that header on every request.
STRIX_HTTPS = env_bool("STRIX_HTTPS", False)
if STRIX_HTTPS:
    SECURE_SSL_REDIRECT = True
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("STRIX_HSTS_SECONDS", 31_536_000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("STRIX_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("STRIX_HSTS_PRELOAD", True)
if _proxy_header := env_raw("STRIX_TRUSTED_PROXY_HEADER"):
    SECURE_PROXY_SSL_HEADER = ("HTTP_" + _proxy_header.strip().upper().replace("-", "_"), "https")
# The debug page (DJANGO_DEBUG=1) and error reports hide every URL, password, key and token.
DEFAULT_EXCEPTION_REPORTER_FILTER = "strix.debug_filter.SecretsHidingFilter"

ROOT_URLCONF = "strix.urls"
WSGI_APPLICATION = "strix.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "strix" / "templates"],  # before the apps': overrides admin/base_site.html
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": database_from_env()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "var" / "static"

# --- Strix: log store -------------------------------------------------------------------------
STRIX_CLICKHOUSE = clickhouse_from_env()
STRIX_CLICKHOUSE_DATABASE = env_str("STRIX_CLICKHOUSE_DATABASE", "strix")
# A replicated or sharded ClickHouse (docs/OPERATIONS.md, "ClickHouse clusters"); empty: one server.
STRIX_CLICKHOUSE_CLUSTER = clickhouse_cluster_from_env()

# --- Strix: encryption (validated by the strix.E001 system check, not here, so that a bad key is
# reported in one line instead of a traceback) ------------------------------------------------------
STRIX_BACKUP_ENCRYPTION_KEY = env_raw("STRIX_BACKUP_ENCRYPTION_KEY") or ""
STRIX_BACKUP_DECRYPTION_KEYS = env_list("STRIX_BACKUP_DECRYPTION_KEYS")

# --- Strix: storage -----------------------------------------------------------------------------
STRIX_ARCHIVE_DIR = Path(env_str("STRIX_ARCHIVE_DIR", str(BASE_DIR / "var" / "archives")))
# An install keeps backups in {install_dir}/backups; a checkout keeps them under var/ (backups/ is code).
_DEFAULT_BACKUP_DIR = INSTALL_DIR / "backups" if INSTALL_DIR != BASE_DIR else BASE_DIR / "var" / "backups"
STRIX_BACKUP_DIR = Path(env_str("STRIX_BACKUP_DIR", str(_DEFAULT_BACKUP_DIR)))
STRIX_S3 = {
    "endpoint_url": env_raw("STRIX_S3_ENDPOINT") or "",
    "bucket_name": env_raw("STRIX_S3_BUCKET") or "",
    "access_key": env_raw("STRIX_S3_ACCESS_KEY") or "",
    "secret_key": env_raw("STRIX_S3_SECRET_KEY") or "",
    "region_name": env_raw("STRIX_S3_REGION") or "us-east-1",
}
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
    **storage_backends(STRIX_S3, STRIX_ARCHIVE_DIR, STRIX_BACKUP_DIR),
}

# --- Celery -------------------------------------------------------------------------------------
STRIX_REDIS_URL = env_str("STRIX_REDIS_URL", "redis://127.0.0.1:6379/0")
CELERY_BROKER_URL = STRIX_REDIS_URL
CELERY_RESULT_BACKEND = STRIX_REDIS_URL
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_TRACK_STARTED = True
CELERY_WORKER_SEND_TASK_EVENTS = True
CELERY_TASK_SEND_SENT_EVENT = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Three queues, so that no kind of work waits behind another (README, "Workers and queues"): archives,
# restores and verifies on STRIX_CELERY_QUEUE; searches on STRIX_CELERY_QUEUE.searches; the periodic
# maintenance (reaper, schedule scan, retention, alerts) on STRIX_CELERY_QUEUE.maintenance. A worker
# started without -Q reads all three.
CELERY_TASK_DEFAULT_QUEUE = env_str("STRIX_CELERY_QUEUE", "celery")
CELERY_TASK_CREATE_MISSING_QUEUES = True
CELERY_TASK_QUEUES = [
    Queue(name)
    for name in (CELERY_TASK_DEFAULT_QUEUE, *(f"{CELERY_TASK_DEFAULT_QUEUE}.{q}" for q in ("searches", "maintenance")))
]
_MAINTENANCE = {"queue": f"{CELERY_TASK_DEFAULT_QUEUE}.maintenance"}
# The beat schedule lives here; DatabaseScheduler syncs it into django-celery-beat's tables.
CELERY_BEAT_SCHEDULE = {
    "reap-stale-jobs": {"task": "strix.reap_stale_jobs", "schedule": 300.0, "options": _MAINTENANCE},
    "scan-archive-schedules": {"task": "strix.scan_archive_schedules", "schedule": 300.0, "options": _MAINTENANCE},
    "enforce-retention": {"task": "strix.enforce_retention", "schedule": 3600.0, "options": _MAINTENANCE},
    "check-alerts": {"task": "strix.check_alerts", "schedule": 300.0, "options": _MAINTENANCE},
}
# At most this many searches per fractal queued or running: one admin's searches cannot fill the queue.
STRIX_SEARCHES_PER_FRACTAL = env_int("STRIX_SEARCHES_PER_FRACTAL", 2, minimum=1)
# Per-fractal Redis locks expire this long after their worker's last heartbeat (renewed every TTL/4).
STRIX_LOCK_TTL_SECONDS = env_float("STRIX_LOCK_TTL_SECONDS", 60.0, minimum=1)
# A job whose progress has not moved for this long is failed by the reaper and its fractal freed.
STRIX_JOB_STALL_SECONDS = env_float("STRIX_JOB_STALL_SECONDS", 600.0, minimum=1)
# A day copied from the previous archive (synthetic archives) up to this size is held while its chunks
# authenticate, then sealed: read once. A larger day is read twice (authenticated, then copied).
STRIX_ARCHIVE_COPY_BUFFER_MB = env_float("STRIX_ARCHIVE_COPY_BUFFER_MB", 32.0, minimum=0)
# A restore's time range is kept from retention in its target for this many days.
STRIX_RESTORE_HOLD_DAYS = env_int("STRIX_RESTORE_HOLD_DAYS", 14, minimum=0)
# Alerts (archives/services/alerts.py): a webhook (JSON with a Slack-compatible "text") and/or e-mails.
STRIX_ALERT_WEBHOOK_URL = env_str("STRIX_ALERT_WEBHOOK_URL", "")
STRIX_ALERT_EMAILS = [a.strip() for a in env_str("STRIX_ALERT_EMAILS", "").split(",") if a.strip()]
# An alert when no PostgreSQL backup completed within this many hours.
STRIX_BACKUP_MAX_AGE_HOURS = env_float("STRIX_BACKUP_MAX_AGE_HOURS", 26.0, minimum=1)
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_str("EMAIL_USE_TLS", "") in ("1", "true", "yes")
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "strix-data-protection@localhost")
# /metrics and /readyz's details ask for "Authorization: Bearer TOKEN" (made by strix-setup --install);
# without a token set, /metrics serves nothing (it names fractals).
STRIX_METRICS_TOKEN = env_str("STRIX_METRICS_TOKEN", "")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("STRIX_LOG_LEVEL", "INFO")},
    # The driver logs a traceback for every refused connection; logstore reports it in one line.
    "loggers": {"clickhouse_driver": {"level": "CRITICAL"}},
}
