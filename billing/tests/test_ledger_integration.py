"""The ledger with a real Celery worker on Redis: redelivery, a killed worker, Redis stopped and started."""
import signal
import time

import pytest
from django.db import transaction

from billing.ledger import usage_drift, usage_enqueue, usage_sweep
from billing.models import PendingUsage, UsageCounter, UsageEvent
from billing.services import subscription_get_live
from billing.tasks import usage_record_task
from saas_bot.testing.pytest_plugin import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _enqueue_many(company, keys):
    period = subscription_get_live(company=company).current_period_start
    for key in keys:
        with transaction.atomic():  # each answer's own transaction; the task is sent on commit
            usage_enqueue(company=company, idempotency_key=key, period_start=period, end_user_id=hash(key) % 7)


def test_exactly_one_event_per_key_through_redelivery_worker_kill_and_broker_outage(
        company, private_redis, celery_workers):
    worker = celery_workers(private_redis.url, CELERY_VISIBILITY_TIMEOUT="5")
    keys = [f"tg:1:{i}" for i in range(60)]
    _enqueue_many(company, keys[:20])
    for key in keys[:20]:
        for _ in range(5):  # Celery delivers the same task again and again
            usage_record_task.delay(key)
    wait_until(lambda: not PendingUsage.objects.exists())

    # A worker killed in the middle of recording: the rest waits in the outbox and is swept.
    _enqueue_many(company, keys[20:40])  # the worker is killed right after, possibly mid-task
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=10)
    celery_workers(private_redis.url, CELERY_VISIBILITY_TIMEOUT="5")
    usage_sweep(older_than_seconds=0)
    wait_until(lambda: not PendingUsage.objects.exists())

    # Redis stopped: answers still write their usage (outbox); after Redis is back the sweep sends it.
    private_redis.stop()
    started = time.monotonic()
    _enqueue_many(company, keys[40:])
    assert time.monotonic() - started < 30  # an unreachable broker does not hang the answer path
    assert PendingUsage.objects.count() == 20
    private_redis.start()
    usage_sweep(older_than_seconds=0)
    wait_until(lambda: not PendingUsage.objects.exists())

    assert UsageEvent.objects.count() == 60
    assert sorted(UsageEvent.objects.values_list("idempotency_key", flat=True)) == sorted(keys)
    assert UsageCounter.objects.get(company=company).messages == 60
    assert usage_drift() == []
