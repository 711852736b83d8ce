"""Quota reservation: atomic under concurrency, idempotent per key, stacked windows."""
import datetime as dt
import threading

import pytest
from django.db import connections

from billing.models import QuotaReservation, QuotaWindow
from billing.quotas import quota_release_message, quota_reserve, quota_settle
from saas_bot.errors import NoLiveSubscription, QuotaExceeded


def _gate(company):
    return QuotaWindow.objects.get(company=company, scope="company")


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
                quota_reserve(company=company, idempotency_key=f"k-{n}-{i}", end_user_id=n)
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
    assert _gate(company).messages == 50
    assert QuotaReservation.objects.count() == 50


@pytest.mark.django_db
def test_same_key_reserves_once(make_company):
    company = make_company("once", max_messages_per_period=1)
    first = quota_reserve(company=company, idempotency_key="tg:1:1")
    again = quota_reserve(company=company, idempotency_key="tg:1:1")
    assert first.created and not again.created
    with pytest.raises(QuotaExceeded) as caught:
        quota_reserve(company=company, idempotency_key="tg:1:2")
    assert caught.value.code == "quota_messages"


@pytest.mark.django_db
def test_unlimited_plan_and_release(make_company):
    company = make_company("free-for-all")  # every limit null = unlimited
    for i in range(30):
        quota_reserve(company=company, idempotency_key=f"u{i}", end_user_id=7)
    assert quota_release_message(company=company, idempotency_key="u0") is True
    assert quota_release_message(company=company, idempotency_key="u0") is False
    assert _gate(company).messages == 29
    assert QuotaWindow.objects.get(company=company, scope="end_user", subject=7).messages == 29


@pytest.mark.django_db
def test_bot_cap_within_the_plan(make_company, bot):
    bot.max_messages_per_period = 2
    for i in range(2):
        quota_reserve(company=bot.company, idempotency_key=f"b{i}", bot=bot)
    with pytest.raises(QuotaExceeded) as caught:
        quota_reserve(company=bot.company, idempotency_key="b3", bot=bot)
    assert caught.value.code == "quota_bot_messages"
    quota_reserve(company=bot.company, idempotency_key="nobot")  # the company still has quota


@pytest.mark.django_db
def test_end_user_daily_limit_resets_the_next_day(make_company):
    company = make_company("peruser", max_messages_per_end_user_per_day=2)
    now = dt.datetime.now(dt.timezone.utc).replace(hour=12)
    for i in range(2):
        quota_reserve(company=company, idempotency_key=f"e{i}", end_user_id=42, at=now)
    with pytest.raises(QuotaExceeded) as caught:
        quota_reserve(company=company, idempotency_key="e3", end_user_id=42, at=now)
    assert caught.value.code == "quota_end_user_daily"
    quota_reserve(company=company, idempotency_key="other", end_user_id=43, at=now)
    quota_reserve(company=company, idempotency_key="tomorrow", end_user_id=42, at=now + dt.timedelta(days=1))


@pytest.mark.django_db
def test_tokens_stop_answers_once_spent_with_overshoot_bounded_by_one_answer(make_company):
    company = make_company("tokens", max_tokens_per_period=3000)
    admitted = []
    for i in range(10):
        try:
            quota_reserve(company=company, idempotency_key=f"t{i}", estimated_tokens=1500)
        except QuotaExceeded as exc:
            assert exc.code == "quota_tokens"
            break
        quota_settle(company=company, idempotency_key=f"t{i}", actual_tokens=900)
        admitted.append(i)
    used = _gate(company).tokens
    assert len(admitted) == 4 and used == 3600  # 0, 900, 1800, 2700 < 3000 admitted; 3600 refused
    assert used - 3000 < 900  # overshoot below one answer


@pytest.mark.django_db
def test_company_without_subscription_gets_no_answers(db):
    from tenants.services import company_create

    company = company_create(name="Nobody", slug="nobody")
    with pytest.raises(NoLiveSubscription):
        quota_reserve(company=company, idempotency_key="x")
