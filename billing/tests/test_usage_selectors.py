"""Selectors behind the usage dashboard: daily series per bot, every company against its limits."""
import datetime as dt

import pytest
from django.utils import timezone

from billing.models import UsageEvent
from bots.selectors import bot_names
from billing.selectors import usage_daily_by_bot, usage_limits_all, usage_limits_csv_rows
from bots.models import Bot

pytestmark = pytest.mark.django_db

DAY = dt.date(2026, 11, 10)


def _event(company, bot, day, *, kind="message", tokens=0, key):
    at = timezone.make_aware(dt.datetime.combine(day, dt.time(12)), dt.timezone.utc)
    UsageEvent.objects.create(idempotency_key=key, company=company, bot=bot, kind=kind, period_start=at,
                              occurred_at=at, prompt_tokens=tokens, completion_tokens=0,
                              quantity=tokens or 1)


def test_daily_by_bot_counts_each_bot_per_day_with_zeros(make_company):
    acme, globex = make_company("acme"), make_company("globex")
    one = Bot.objects.create(company=acme, name="one", username="one_bot", token_encrypted="x")
    two = Bot.objects.create(company=acme, name="two", username="two_bot", token_encrypted="x")
    foreign = Bot.objects.create(company=globex, name="three", username="three_bot", token_encrypted="x")
    _event(acme, one, DAY, key="a1")
    _event(acme, one, DAY, key="a2")
    _event(acme, one, DAY, kind="llm_tokens", tokens=120, key="a2:llm")
    _event(acme, two, DAY + dt.timedelta(days=2), key="b1")
    _event(acme, one, DAY + dt.timedelta(days=5), key="outside")  # after the range
    _event(globex, foreign, DAY, key="g1")

    rows = usage_daily_by_bot(company=acme, start=DAY, end=DAY + dt.timedelta(days=2), bots=bot_names(company=acme))

    assert len(rows) == 6  # 2 bots x 3 days, zeros included
    table = {(r["bot"], r["day"]): (r["messages"], r["tokens"]) for r in rows}
    assert table[("@one_bot", DAY)] == (2, 120)
    assert table[("@two_bot", DAY + dt.timedelta(days=2))] == (1, 0)
    assert table[("@one_bot", DAY + dt.timedelta(days=1))] == (0, 0)
    assert all(r["bot_id"] != foreign.id for r in rows)
    assert usage_daily_by_bot(company=make_company("initech"), start=DAY, end=DAY, bots={}) == []


def test_limits_of_every_live_company(make_company):
    make_company("acme", max_messages_per_period=100, max_bots=2)
    make_company("globex")
    rows = usage_limits_all()
    assert [r["company"].slug for r in rows] == ["acme", "globex"]
    acme = {limit["limit"]: limit for limit in rows[0]["limits"]}
    assert acme["max_messages_per_period"]["maximum"] == 100 and acme["max_bots"]["maximum"] == 2
    flat = usage_limits_csv_rows(rows)
    assert flat[0]["slug"] == "acme" and flat[0]["max_bots_max"] == 2 and flat[1]["max_bots_max"] == ""
