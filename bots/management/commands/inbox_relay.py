"""``manage.py inbox_relay``: run the inbox relay on its own (publish stored updates' tasks to the broker).

The answers worker runs the relay itself (saas_bot/celery.py); this command is for a deployment that wants it
as a separate process, and for benchmarks. Stops on SIGTERM or Ctrl-C.
"""
from __future__ import annotations

import signal
import threading

from django.core.management.base import BaseCommand, CommandError

from bots.inbox import inbox_relay_enabled, inbox_relay_run


class Command(BaseCommand):
    help = "Publish the tasks of stored Telegram updates (the inbox's handoff rows) to the broker, until stopped."

    def handle(self, *args, **options) -> None:
        if not inbox_relay_enabled():
            raise CommandError("The relay needs a broker (REDIS_URL or CELERY_BROKER_URL) and TELEGRAM_INBOX_RELAY on.")
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        inbox_relay_run(stop=stop)
