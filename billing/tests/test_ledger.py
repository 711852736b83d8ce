"""The usage ledger: outbox to ledger exactly once, cost, counters, rebuild, drift, alerts, reports."""
import datetime as dt
from decimal import Decimal

import pytest
from django.core import mail
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import transaction

from billing.ledger import usage_drift, usage_enqueue, usage_record, usage_sweep
from billing.models import (EndUserDailyCounter, LimitAlert, ModelPrice, PendingUsage, UsageCounter, UsageEvent)
from billing.selectors import rows_to_csv, usage_current, usage_daily, usage_report, usage_top_end_users
from billing.services import subscription_get_live

pytestmark = pytest.mark.django_db


def _enqueue(company, key, **kwargs):
    period = subscription_get_live(company=company).current_period_start
    with transaction.atomic():
        return usage_enqueue(company=company, idempotency_key=key, period_start=period, **kwargs)


def test_event_is_recorded_once_however_often_the_task_runs(company, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert _enqueue(company, "tg:1:1", end_user_id=9) is True
        assert _enqueue(company, "tg:1:1", end_user_id=9) is False  # same key pending
    assert len(callbacks) == 1 and PendingUsage.objects.count() == 1
    assert usage_record(idempotency_key="tg:1:1") is True
    for _ in range(5):  # Celery redelivery
        assert usage_record(idempotency_key="tg:1:1") is False
    assert UsageEvent.objects.count() == 1 and not PendingUsage.objects.exists()
    assert UsageCounter.objects.get(company=company).messages == 1
    assert EndUserDailyCounter.objects.get(company=company, end_user_id=9).messages == 1
    assert _enqueue(company, "tg:1:1") is False  # already in the ledger


def test_cost_comes_from_the_model_price_table(company):
    from billing.ledger import model_price_cache_clear

    ModelPrice.objects.create(model="gpt-4o-mini", prompt_per_1k=Decimal("0.15"), completion_per_1k=Decimal("0.6"))
    model_price_cache_clear()
    _enqueue(company, "k:llm", kind="llm_tokens", quantity=3000, prompt_tokens=2000, completion_tokens=1000,
             model="gpt-4o-mini-2024-07-18")
    usage_record(idempotency_key="k:llm")
    event = UsageEvent.objects.get()
    assert event.cost == Decimal("0.9")  # 2 x 0.15 + 1 x 0.6
    counter = UsageCounter.objects.get(company=company)
    assert counter.tokens == 3000 and counter.cost == Decimal("0.9") and counter.messages == 0
    assert usage_current(company=company)["credits"] == 900


def test_sweep_resends_what_waited_in_the_outbox(company, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):  # the broker was down: nothing was sent
        _enqueue(company, "tg:2:2")
    PendingUsage.objects.update(created_at=dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc))
    assert usage_sweep(older_than_seconds=30) == 1  # eager here: recorded at once
    assert UsageEvent.objects.filter(idempotency_key="tg:2:2").exists() and not PendingUsage.objects.exists()


def test_rebuild_and_drift_check(company, capsys):
    for i in range(3):
        _enqueue(company, f"m{i}", end_user_id=5)
        usage_record(idempotency_key=f"m{i}")
    assert usage_drift() == []
    UsageCounter.objects.update(messages=99)
    EndUserDailyCounter.objects.update(messages=7)
    drift = usage_drift(company=company)
    assert {d["field"] for d in drift} == {"messages"} and len(drift) == 2
    with pytest.raises(CommandError, match="differ"):
        call_command("usage_check")
    call_command("usage_rebuild", company="acme")
    assert UsageCounter.objects.get(company=company).messages == 3
    call_command("usage_check")
    assert "Counters match the ledger" in capsys.readouterr().out


def test_alerts_at_80_and_100_percent_once_per_period_with_email(make_company, django_user_model,
                                                                 django_capture_on_commit_callbacks):
    from tenants.models import Membership

    company = make_company("alerts", max_messages_per_period=5)
    owner = django_user_model.objects.create_user("owner", email="owner@example.com", password="x")
    Membership.objects.create(user=owner, company=company, role="owner")
    with django_capture_on_commit_callbacks(execute=True):  # recording and email happen after commit
        for i in range(6):
            _enqueue(company, f"a{i}")
    assert sorted(LimitAlert.objects.values_list("threshold", flat=True)) == [80, 100]
    assert len(mail.outbox) == 2 and mail.outbox[0].to == ["owner@example.com"]
    assert "80%" in mail.outbox[0].subject and "100%" in mail.outbox[1].subject


def test_usage_selectors_and_csv(company, bot):
    for i, user in enumerate([1, 1, 2]):
        _enqueue(company, f"s{i}", end_user_id=user, bot_id=bot.id)
        usage_record(idempotency_key=f"s{i}")
    today = dt.datetime.now(dt.timezone.utc).date()
    series = usage_daily(company=company, start=today - dt.timedelta(days=2), end=today)
    assert [d["messages"] for d in series] == [0, 0, 3]
    assert usage_daily(company=company, start=today, end=today, bot_id=bot.id + 999)[0]["messages"] == 0
    period = subscription_get_live(company=company).current_period_start
    assert usage_top_end_users(company=company, period_start=period)[0] == {"end_user_id": 1, "messages": 2}
    start = dt.datetime.combine(today, dt.time(), dt.timezone.utc)
    report = usage_report(start=start, end=start + dt.timedelta(days=1))
    assert report[0]["slug"] == "acme" and report[0]["messages"] == 3
    assert rows_to_csv(report).splitlines()[0] == "company,slug,plan,messages,tokens,embedding_tokens,cost,credits"
    current = usage_current(company=company)
    assert {row["limit"] for row in current["limits"]} >= {"max_messages_per_period", "max_bots"}


def test_usage_export_command(company, tmp_path):
    out = tmp_path / "report.csv"
    call_command("usage_export", start="2026-01-01", end="2026-12-31", output=str(out))
    assert out.read_text().startswith("company,slug,plan")
    with pytest.raises(CommandError, match="not a date"):
        call_command("usage_export", start="yesterday", end="2026-12-31")
