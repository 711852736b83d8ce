"""Thin Celery tasks of the API app."""
from celery import shared_task

from saas_bot.api.idempotency import idempotency_records_purge


@shared_task(name="api.idempotency_purge", acks_late=True, soft_time_limit=300)
def idempotency_purge_task() -> int:
    """Delete stored Idempotency-Key responses past their 24 h; hourly from beat."""
    return idempotency_records_purge()
