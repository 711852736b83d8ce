"""Celery: the broker, eager mode without one, queues and routes (the beat schedule is in schedule.py)."""
from kombu import Queue

from saas_bot.settings.base import REDIS_URL, TIME_ZONE, env

# No broker configured: tasks run in-process (eager). REDIS_URL or CELERY_BROKER_URL: a real worker.
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="") or REDIS_URL
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Redis delivers an unacknowledged task again after this many seconds; a countdown or ETA longer than it
# would be delivered again every visibility timeout, so no task of ours is scheduled further ahead.
CELERY_VISIBILITY_TIMEOUT = env.int("CELERY_VISIBILITY_TIMEOUT", default=3600)
# An unreachable broker must not hang the webhook: fail fast, the inbox sweep re-enqueues.
CELERY_BROKER_TRANSPORT_OPTIONS = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5,
                                   "socket_connect_timeout": 1, "socket_timeout": 2,
                                   # An unacknowledged task (worker killed) is delivered again after this many seconds.
                                   "visibility_timeout": CELERY_VISIBILITY_TIMEOUT,
                                   # Priorities 0 (first) to 9 on Redis: a bot flooding us is queued behind
                                   # the others (bots.ratelimit.intake_priority).
                                   "priority_steps": list(range(10)), "sep": ":",
                                   "queue_order_strategy": "priority"}
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = TIME_ZONE
# Queues by the kind of work (docs/architecture.md, "Processes"):
# - "answers": Telegram updates. Mostly waiting on the chat model and Telegram (1-3 s per answer), so one
#   worker process with a threads pool keeps hundreds in flight: `-Q answers,celery -P threads -c 64`.
# - "celery" (the default): short housekeeping (sweeps, usage ledger, renewals); IO-bound, same worker.
# - "ingest": extraction, chunking and batch embedding; CPU-bound, a prefork pool of one process per core:
#   `-Q ingest -P prefork -c 2`.
# A worker started without -Q consumes all three (development, tests).
CELERY_TASK_DEFAULT_QUEUE = "celery"
# Each queue has its own routing key: without one, Celery binds every queue to the key "celery" and a task
# would be copied into all three.
CELERY_TASK_QUEUES = [Queue(name, routing_key=name) for name in ("answers", "celery", "ingest")]
CELERY_TASK_ROUTES = {
    "bots.process_update": {"queue": "answers"},
    "rag.document_ingest": {"queue": "ingest"},
    "rag.knowledge_base_reembed": {"queue": "ingest"},
    "rag.source_sync": {"queue": "ingest"},  # crawls, then extracts and embeds what changed (hours at most)
    "rag.company_hnsw_indexes_reconcile": {"queue": "ingest"},  # index builds: minutes of CPU per large company
}
