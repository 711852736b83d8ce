"""The Celery application. Settings come from Django settings (prefix CELERY_).

Without a broker URL, ``CELERY_TASK_ALWAYS_EAGER`` is on and tasks run in the
calling process (see :func:`saas_bot.tasking.enqueue_on_commit`).
"""
import os

from celery import Celery
from celery.signals import worker_ready, worker_shutdown

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "saas_bot.settings")

app = Celery("saas_bot")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


# The inbox relay (bots.inbox.inbox_relay_run) runs in every worker that consumes the "answers" queue, where
# bots.process_update goes: it publishes the tasks of updates the webhook stored (docs/architecture.md).
_relay = None


@worker_ready.connect
def _inbox_relay_start(sender=None, **kwargs) -> None:
    global _relay
    from bots.inbox import inbox_relay_enabled, inbox_relay_start

    consumed = set(sender.app.amqp.queues.consume_from) if sender is not None else set()
    if inbox_relay_enabled() and "answers" in consumed and _relay is None:
        _relay = inbox_relay_start()


@worker_shutdown.connect
def _inbox_relay_stop(**kwargs) -> None:
    if _relay is not None:
        thread, stop = _relay
        stop.set()
        thread.join(timeout=10)
