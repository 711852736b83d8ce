"""Monthly message quota: atomic under concurrency, idempotent per key, periods anchored to the start."""
import datetime as dt
import threading

import pytest
from django.db import connections

from billing.models import QuotaReservation, UsageCounter, UsageEvent
from billing.services import (period_bounds, quota_release_message, quota_reserve_message, subscription_get_live,
                              usage_record)
from saas_bot.errors import NoLiveSubscription, QuotaExceeded


@pytest.mark.django_db(transaction=True)
def test_concurrent_reservations_never_exceed_the_limit(make_company):
    company = make_company("busy", max_messages_per_period=50)
    outcomes: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(40)

    def worker(n: int) -> None:
        start.wait()
        for i in range(5):  # 40 threads x 5 = 200 attempts against a quota of 50
            try:
                quota_reserve_message(company=company, idempotency_key=f"k-{n}-{i}")
                result = "ok"
            except QuotaExceeded:
                result = "limit"
            with lock:
                outcomes.append(result)
        connections.close_all()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("ok") == 50 and outcomes.count("limit") == 150
    assert UsageCounter.objects.get(company=company).messages == 50
    assert QuotaReservation.objects.count() == 50


@pytest.mark.django_db
def test_same_key_reserves_once(make_company):
    company = make_company("once", max_messages_per_period=1)
    first = quota_reserve_message(company=company, idempotency_key="tg:1:1")
    again = quota_reserve_message(company=company, idempotency_key="tg:1:1")
    assert first.created and not again.created
    with pytest.raises(QuotaExceeded) as caught:
        quota_reserve_message(company=company, idempotency_key="tg:1:2")
    assert caught.value.code == "quota_messages"


@pytest.mark.django_db
def test_unlimited_plan_and_release(make_company):
    company = make_company("free-for-all")  # every limit null = unlimited
    for i in range(30):
        quota_reserve_message(company=company, idempotency_key=f"u{i}")
    assert quota_release_message(company=company, idempotency_key="u0") is True
    assert UsageCounter.objects.get(company=company).messages == 29


@pytest.mark.django_db
def test_usage_event_is_recorded_once_per_key(make_company):
    company = make_company("ledger")
    period = subscription_get_live(company=company).current_period_start
    kwargs = dict(company=company, idempotency_key="tg:9:9", period_start=period, prompt_tokens=120,
                  completion_tokens=30, model="gpt-4o-mini")
    quota_reserve_message(company=company, idempotency_key="tg:9:9")
    assert usage_record(**kwargs) is True
    assert usage_record(**kwargs) is False
    event = UsageEvent.objects.get()
    assert (event.prompt_tokens, event.completion_tokens, event.model) == (120, 30, "gpt-4o-mini")
    assert UsageCounter.objects.get(company=company).tokens == 150
    # A recorded message cannot be released any more.
    assert quota_release_message(company=company, idempotency_key="tg:9:9") is False


@pytest.mark.django_db
def test_company_without_subscription_gets_no_answers(db):
    from tenants.services import company_create

    company = company_create(name="Nobody", slug="nobody")
    with pytest.raises(NoLiveSubscription):
        quota_reserve_message(company=company, idempotency_key="x")


def test_periods_are_monthly_and_anchored_to_the_start():
    anchor = dt.datetime(2026, 1, 31, 10, tzinfo=dt.timezone.utc)
    start, end = period_bounds(anchor=anchor, at=dt.datetime(2026, 3, 5, tzinfo=dt.timezone.utc))
    assert start == dt.datetime(2026, 2, 28, 10, tzinfo=dt.timezone.utc)
    assert end == dt.datetime(2026, 3, 31, 10, tzinfo=dt.timezone.utc)
    start, end = period_bounds(anchor=anchor, at=anchor)
    assert start == anchor and end == dt.datetime(2026, 2, 28, 10, tzinfo=dt.timezone.utc)


@pytest.mark.django_db
def test_period_rolls_forward_when_it_ended(make_company):
    company = make_company("roll")
    sub = subscription_get_live(company=company)
    later = sub.current_period_end + dt.timedelta(days=40)
    rolled = subscription_get_live(company=company, at=later)
    assert rolled.current_period_start <= later < rolled.current_period_end
    assert rolled.current_period_start > sub.current_period_start
