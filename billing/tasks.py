"""Thin Celery tasks of the billing app."""
from celery import shared_task

from billing.ledger import usage_record, usage_sweep
from billing.services import subscriptions_renew_due


@shared_task(name="billing.usage_record", acks_late=True, autoretry_for=(Exception,), retry_backoff=True,
             retry_backoff_max=300, max_retries=None, soft_time_limit=30)
def usage_record_task(idempotency_key: str) -> bool:
    """Move one pending usage event into the ledger; redelivery inserts nothing twice."""
    return usage_record(idempotency_key=idempotency_key)


@shared_task(name="billing.usage_sweep", acks_late=True, soft_time_limit=60)
def usage_sweep_task() -> int:
    """Re-send usage events left in the outbox (broker outage); every minute from beat."""
    return usage_sweep()


@shared_task(name="billing.subscriptions_renew", acks_late=True, soft_time_limit=300)
def subscriptions_renew_task() -> int:
    """Renew, expire or convert due subscriptions; every five minutes from beat."""
    return subscriptions_renew_due()
