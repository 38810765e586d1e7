"""The Celery application of Strix Data Protection."""

import os

from celery import Celery
from celery.signals import beat_init

from strix import locks
from strix.envconfig import require_valid_settings

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "strix.settings")

app = Celery("strix")


@app.on_configure.connect
def _settings_or_one_line_error(sender, **kwargs):
    require_valid_settings()  # a bad variable stops the worker with one line, not a traceback


app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()  # each installed app's tasks.py (archives.tasks)


@beat_init.connect
def _beat_started(sender, **kwargs):
    locks.mark_beat_started()  # /readyz accepts a fresh beat before its first schedule scan
