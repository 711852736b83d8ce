"""Enqueueing tasks after commit, in both broker modes.

With a broker, ``task.delay`` sends the message once the surrounding transaction
commits (a rolled-back write enqueues nothing). Without a broker (the embedded
default) Celery is eager; a task that the caller must not wait for (the
webhook's update processing) then runs in a background thread of this process,
so the webhook still answers at once.
"""
from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from celery import Task
from django.conf import settings
from django.db import InterfaceError, OperationalError, connections, transaction
from kombu.exceptions import OperationalError as BrokerError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from saas_bot.errors import ProviderUnavailable

logger = logging.getLogger("saas_bot.tasking")

# What a task is retried for: the database or the broker away for a moment, the network, a provider's outage.
# Anything else is a bug or bad data that a retry cannot fix: it is recorded where the task's work is kept and
# surfaced (the task fails, its error is logged), never retried forever.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError, InterfaceError, BrokerError, RedisConnectionError, RedisTimeoutError, ConnectionError,
    TimeoutError, ProviderUnavailable)
# Retries of one task run for transient errors (with backoff: about 1 + 2 + ... + 128 s, capped at 300 s each).
TASK_MAX_RETRIES = 8

_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def _background_executor() -> ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            # One thread: eager mode is for development and demos; order of arrival is kept.
            _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="eager-task")
        return _executor


def _run_eager(task: Task, args: tuple, kwargs: dict) -> None:
    try:
        task.apply(args=args, kwargs=kwargs, throw=True)
    except Exception:  # the inbox keeps the row; the sweep or an operator retries it
        logger.exception("eager task %s failed", task.name)


def _run_in_background(task: Task, args: tuple, kwargs: dict) -> None:
    try:
        _run_eager(task, args, kwargs)
    finally:
        # This thread's own connections only. Closing them after each task (eager mode is for
        # development) means no idle session holds the database when the process stops.
        connections.close_all()


def enqueue(task: Task, *args: Any, background: bool = False, priority: int | None = None, **kwargs: Any) -> None:
    """Send ``task`` now (outside any transaction wrapper).

    Args:
        task: a Celery task.
        background: in eager mode, run in a background thread instead of inline.
        priority: queue priority on Redis, 0 (first, the default) to 9; ignored in eager mode.

    Broker errors are logged, not raised: every task we enqueue is backed by a
    database row that a periodic sweep re-enqueues, so nothing is lost.
    """
    if settings.CELERY_TASK_ALWAYS_EAGER:
        if background:
            _background_executor().submit(_run_in_background, task, args, kwargs)
        else:
            _run_eager(task, args, kwargs)
        return
    try:
        options = {"priority": priority} if priority is not None else {}
        task.apply_async(args=args, kwargs=kwargs, retry=False, **options)
    except Exception:
        logger.warning("broker unreachable; %s will be re-enqueued by the sweep", task.name, exc_info=True)


def enqueue_on_commit(task: Task, *args: Any, background: bool = False, priority: int | None = None,
                      **kwargs: Any) -> None:
    """Like :func:`enqueue`, but only once the current transaction commits."""
    transaction.on_commit(lambda: enqueue(task, *args, background=background, priority=priority, **kwargs))


def wait_for_background_tasks(timeout: float = 120.0) -> None:
    """Block until the eager background thread is idle (tests and the demo use it)."""
    executor = _background_executor()
    executor.submit(lambda: None).result(timeout=timeout)
