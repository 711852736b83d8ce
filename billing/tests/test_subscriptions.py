"""Subscriptions: periods, rollover, upgrade, downgrade, cancel, trial, plan changes."""
import datetime as dt

import pytest
from django.db import IntegrityError, transaction

from billing.models import Plan, Subscription
from billing.services import (period_bounds, plan_update, subscription_cancel, subscription_change_plan,
                              subscription_extend_trial, subscription_get_live, subscription_start,
                              subscriptions_renew_due)
from saas_bot.errors import NoLiveSubscription
from tenants.services import company_create

pytestmark = pytest.mark.django_db
UTC = dt.timezone.utc
T0 = dt.datetime(2026, 1, 31, 10, tzinfo=UTC)


@pytest.fixture
def plans():
    small = Plan.objects.create(code="small", name="Small", price=10, max_messages_per_period=100)
    big = Plan.objects.create(code="big", name="Big", price=50, max_messages_per_period=1000)
    trial = Plan.objects.create(code="trial", name="Trial", price=10, trial_days=14, max_messages_per_period=50)
    return small, big, trial


@pytest.fixture
def acme():
    return company_create(name="Acme", slug="acme")


def test_periods_are_monthly_and_anchored_to_the_start():
    start, end = period_bounds(anchor=T0, at=dt.datetime(2026, 3, 5, tzinfo=UTC))
    assert (start, end) == (dt.datetime(2026, 2, 28, 10, tzinfo=UTC), dt.datetime(2026, 3, 31, 10, tzinfo=UTC))
    assert period_bounds(anchor=T0, at=T0) == (T0, dt.datetime(2026, 2, 28, 10, tzinfo=UTC))


def test_rollover_keeps_the_anchor(acme, plans):
    subscription_start(company=acme, plan=plans[0], at=T0)
    rolled = subscription_get_live(company=acme, at=dt.datetime(2026, 4, 2, tzinfo=UTC))
    assert rolled.current_period_start == dt.datetime(2026, 3, 31, 10, tzinfo=UTC)
    assert rolled.current_period_end == dt.datetime(2026, 4, 30, 10, tzinfo=UTC)


def test_one_live_subscription_per_company_is_a_database_constraint(acme, plans):
    subscription_start(company=acme, plan=plans[0], at=T0)
    with pytest.raises(IntegrityError), transaction.atomic():
        Subscription.objects.create(company=acme, plan=plans[1], status="active", started_at=T0,
                                    current_period_start=T0, current_period_end=T0 + dt.timedelta(days=30))


def test_upgrade_applies_now_downgrade_at_period_end(acme, plans):
    small, big, _ = plans
    subscription_start(company=acme, plan=small, at=T0)
    up = subscription_change_plan(company=acme, plan=big)
    assert up.plan == big and up.limits["max_messages_per_period"] == 1000
    down = subscription_change_plan(company=acme, plan=small)
    assert down.plan == big and down.pending_plan == small
    renewed = subscription_get_live(company=acme, at=dt.datetime(2026, 3, 1, tzinfo=UTC))
    assert renewed.plan == small and renewed.pending_plan is None
    assert renewed.limits["max_messages_per_period"] == 100


def test_cancel_at_period_end_keeps_answering_until_then(acme, plans):
    subscription_start(company=acme, plan=plans[0], at=T0)
    subscription_cancel(company=acme)
    assert subscription_get_live(company=acme, at=T0 + dt.timedelta(days=10)).cancel_at_period_end
    with pytest.raises(NoLiveSubscription):
        subscription_get_live(company=acme, at=dt.datetime(2026, 3, 1, tzinfo=UTC))
    assert Subscription.objects.get().status == "canceled"


def test_cancel_now(acme, plans):
    subscription_start(company=acme, plan=plans[0], at=T0)
    subscription_cancel(company=acme, at_period_end=False)
    with pytest.raises(NoLiveSubscription):
        subscription_get_live(company=acme)


def test_trial_converts_to_active_at_its_end_and_can_be_extended(acme, plans):
    sub = subscription_start(company=acme, plan=plans[2], at=T0)
    assert sub.status == "trialing" and sub.trial_ends_at == T0 + dt.timedelta(days=14)
    subscription_extend_trial(company=acme, days=7)
    assert subscription_get_live(company=acme, at=T0 + dt.timedelta(days=15)).status == "trialing"
    assert subscriptions_renew_due(at=T0 + dt.timedelta(days=22)) == 1
    assert Subscription.objects.get().status == "active"


def test_canceled_trial_expires(acme, plans):
    subscription_start(company=acme, plan=plans[2], at=T0)
    subscription_cancel(company=acme)
    subscriptions_renew_due(at=T0 + dt.timedelta(days=15))
    assert Subscription.objects.get().status == "canceled"


def test_plan_change_reaches_subscribers_next_period_unless_applied_now(acme, plans):
    small = plans[0]
    subscription_start(company=acme, plan=small, at=T0)
    plan_update(plan=small, max_messages_per_period=150)
    assert subscription_get_live(company=acme, at=T0).limits["max_messages_per_period"] == 100
    assert subscription_get_live(company=acme, at=dt.datetime(2026, 3, 1, tzinfo=UTC)).limits[
        "max_messages_per_period"] == 150
    plan_update(plan=small, apply_now=True, max_messages_per_period=175)
    assert subscription_get_live(company=acme, at=dt.datetime(2026, 3, 1, tzinfo=UTC)).limits[
        "max_messages_per_period"] == 175


def test_renewal_task_rolls_every_due_subscription(plans):
    for slug in ("a", "b"):
        subscription_start(company=company_create(name=slug, slug=slug), plan=plans[0], at=T0)
    assert subscriptions_renew_due(at=dt.datetime(2026, 3, 5, tzinfo=UTC)) == 2
    assert set(Subscription.objects.values_list("current_period_start", flat=True)) == {
        dt.datetime(2026, 2, 28, 10, tzinfo=UTC)}


def test_suspended_company_gets_no_answers(acme, plans):
    subscription_start(company=acme, plan=plans[0], at=T0)
    acme.is_active = False
    acme.save()
    with pytest.raises(NoLiveSubscription):
        subscription_get_live(company=acme, at=T0)
