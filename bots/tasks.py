"""Thin Celery tasks of the bots app."""
from celery import shared_task

from bots.updates import RetryLater, inbox_sweep, update_process


@shared_task(name="bots.process_update", bind=True, acks_late=True, max_retries=8, soft_time_limit=120,
             time_limit=150)
def process_update_task(self, update_pk: int) -> str:
    """Process one inbox update; redelivery is harmless (the row is claimed, the answer keyed by update)."""
    try:
        return update_process(update_pk=update_pk)
    except RetryLater as exc:
        if self.request.is_eager:
            return "pending"  # no broker to retry through: the row stays pending for the sweep
        # Flood-limit deferrals are not failures: they may repeat as long as the backlog lasts.
        raise self.retry(countdown=max(1, int(exc.countdown + 0.999)), exc=exc,
                         max_retries=None if exc.flood else self.max_retries)


@shared_task(name="bots.inbox_sweep", acks_late=True, soft_time_limit=60)
def inbox_sweep_task() -> int:
    """Re-enqueue updates left pending or stuck; runs every 30 s from beat."""
    return inbox_sweep()
