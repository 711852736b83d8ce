"""The Celery application. Settings come from Django settings (prefix CELERY_).

Without a broker URL, ``CELERY_TASK_ALWAYS_EAGER`` is on and tasks run in the
calling process (see :func:`saas_bot.tasking.enqueue_on_commit`).
"""
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "saas_bot.settings")

app = Celery("saas_bot")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
