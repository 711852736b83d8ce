"""updates_retry: failed and stuck updates go back to the queue; live or finished ones are left alone."""
import datetime as dt

import pytest
from django.utils import timezone

from bots.models import TelegramUpdate
from bots.inbox import claim_stale_seconds, updates_retry

pytestmark = pytest.mark.django_db


def test_retry_only_failed_pending_and_stuck(bot, django_capture_on_commit_callbacks):
    now = timezone.now()

    def row(update_id, status, locked_at=None):
        return TelegramUpdate.objects.create(company=bot.company, bot=bot, update_id=update_id, status=status,
                                             payload={"update_id": update_id}, attempts=3, locked_at=locked_at)

    failed, done, ignored = row(1, "failed"), row(2, "done"), row(3, "ignored")
    stuck = row(4, "processing", now - dt.timedelta(seconds=claim_stale_seconds() + 60))
    busy = row(5, "processing", now)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        count = updates_retry(update_pks=[r.pk for r in (failed, done, ignored, stuck, busy)])
    assert count == 2 and len(callbacks) == 2
    statuses = dict(TelegramUpdate.objects.values_list("update_id", "status"))
    assert statuses == {1: "pending", 2: "done", 3: "ignored", 4: "pending", 5: "processing"}
    assert TelegramUpdate.objects.get(pk=stuck.pk).locked_at is None
