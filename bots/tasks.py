"""Thin Celery tasks of the bots app."""
from celery import shared_task
from django.conf import settings

from bots.delivery import RetryLater
from bots.inbox import inbox_sweep, update_process


@shared_task(name="bots.process_update", bind=True, acks_late=True, max_retries=8, soft_time_limit=120,
             time_limit=150)
def process_update_task(self, update_pk: int, slot_at: float | None = None) -> str:
    """Process one inbox update; redelivery is harmless (the row is claimed, the answer keyed by update).

    ``slot_at``: a send time reserved when the update was deferred by the flood limiter (bots.delivery).
    """
    try:
        return update_process(update_pk=update_pk, slot_at=slot_at)
    except RetryLater as exc:
        if self.request.is_eager:
            return "pending"  # no broker to retry through: the row stays pending for the sweep
        if exc.countdown > settings.TELEGRAM_COUNTDOWN_MAX_SECONDS:
            # Longer than a task may be scheduled ahead (a countdown past the broker's visibility timeout is
            # delivered again every hour): the row is parked with not_before and the sweep re-enqueues it.
            return "parked"
        # Flood-limit deferrals are not failures: they may repeat as long as the backlog lasts, and the
        # retry keeps the send time reserved for it.
        raise self.retry(countdown=max(0, exc.countdown), exc=exc, kwargs={"update_pk": update_pk,
                                                                         "slot_at": exc.slot_at},
                         max_retries=None if exc.flood else self.max_retries)


@shared_task(name="bots.inbox_sweep", acks_late=True, soft_time_limit=60)
def inbox_sweep_task() -> int:
    """Re-enqueue updates left pending, due after a wait, or stuck; runs every TELEGRAM_INBOX_SWEEP_SECONDS."""
    return inbox_sweep()
