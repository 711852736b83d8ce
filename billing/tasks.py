"""Thin Celery tasks of the billing app."""
from celery import shared_task

from billing.ledger import usage_record, usage_record_failed, usage_sweep
from billing.services import subscriptions_renew_due
from saas_bot.tasking import TASK_MAX_RETRIES, TRANSIENT_ERRORS


@shared_task(name="billing.usage_record", acks_late=True, autoretry_for=TRANSIENT_ERRORS, retry_backoff=True,
             retry_backoff_max=300, max_retries=TASK_MAX_RETRIES, soft_time_limit=30)
def usage_record_task(idempotency_key: str) -> bool:
    """Move one pending usage event into the ledger; redelivery inserts nothing twice.

    Transient errors (``saas_bot.tasking.TRANSIENT_ERRORS``) are retried with backoff, ``TASK_MAX_RETRIES``
    times; the row then waits in the outbox for the sweep. Any other error is recorded on the outbox row
    (``usage_record_failed``: the sweep leaves it, ``usage_check`` reports it) and the task fails.
    """
    try:
        return usage_record(idempotency_key=idempotency_key)
    except TRANSIENT_ERRORS:
        raise
    except Exception as exc:
        usage_record_failed(idempotency_key=idempotency_key, error=exc)
        raise


@shared_task(name="billing.usage_sweep", acks_late=True, soft_time_limit=60)
def usage_sweep_task() -> int:
    """Re-send usage events left in the outbox (broker outage); every minute from beat."""
    return usage_sweep()


@shared_task(name="billing.subscriptions_renew", acks_late=True, soft_time_limit=300)
def subscriptions_renew_task() -> int:
    """Renew, expire or convert due subscriptions; every five minutes from beat."""
    return subscriptions_renew_due()
