"""The Celery application of Strix Data Protection."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "strix.settings")

app = Celery("strix")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["workers"])
