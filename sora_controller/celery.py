"""The Celery app. Workers run `celery -A sora_controller worker`; the embedded default runs the same
task functions in process (see rendering.dispatch)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sora_controller.settings")

app = Celery("sora_controller")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
