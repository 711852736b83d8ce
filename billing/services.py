"""Writes on plans and subscriptions. Quotas live in billing/quotas.py, the ledger in billing/ledger.py.

Periods are monthly, anchored to the subscription's start (``period_bounds``). A plan change
applies to subscribers from their next period unless staff apply it now; an upgrade takes effect
at once, a downgrade at the period end, a cancellation at the period end.
"""
from __future__ import annotations

import datetime as dt
import logging

from dateutil.relativedelta import relativedelta
from django.db import transaction
from django.utils import timezone

from billing.models import Plan, Subscription
from saas_bot.errors import NoLiveSubscription, NotFound, QuotaExceeded, ValidationFailed
from tenants.models import Company

logger = logging.getLogger("saas_bot.billing")


def period_bounds(*, anchor: dt.datetime, at: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """The monthly period containing ``at``, anchored to ``anchor`` (the subscription start).

    A period runs from anchor + n months to anchor + (n+1) months; relativedelta clamps to the
    month's last day (anchor Jan 31 -> Feb 28/29 -> Mar 31).
    """
    months = (at.year - anchor.year) * 12 + (at.month - anchor.month)
    start = anchor + relativedelta(months=months)
    if start > at:
        months -= 1
        start = anchor + relativedelta(months=months)
    return start, anchor + relativedelta(months=months + 1)


@transaction.atomic
def subscription_start(*, company: Company, plan: Plan, at: dt.datetime | None = None) -> Subscription:
    """Subscribe ``company`` to ``plan`` from ``at`` (default now).

    Trialing for ``plan.trial_days`` days when the plan has a trial, else active. Any live
    subscription of the company is canceled first (one live subscription per company, a
    database constraint).

    Raises:
        ValidationFailed(code="plan_archived"): archived plans take no new subscribers.
    """
    if plan.is_archived:
        raise ValidationFailed(code="plan_archived", message=f"Plan '{plan.code}' is archived.")
    at = at or timezone.now()
    Subscription.objects.for_company(company).filter(status__in=Subscription.LIVE_STATUSES).update(
        status=Subscription.Status.CANCELED, canceled_at=at)
    start, end = period_bounds(anchor=at, at=at)
    trial = plan.trial_days > 0
    return Subscription.objects.create(
        company=company, plan=plan, status=Subscription.Status.TRIALING if trial else Subscription.Status.ACTIVE,
        started_at=at, current_period_start=start, current_period_end=end,
        trial_ends_at=at + dt.timedelta(days=plan.trial_days) if trial else None, limits=plan.limits())


def _live(company: Company, *, lock: bool = False) -> Subscription | None:
    qs = Subscription.objects.for_company(company).select_related("plan", "pending_plan").filter(
        status__in=Subscription.LIVE_STATUSES)
    if lock:
        qs = qs.select_for_update(of=("self",))
    return qs.first()


def _advance(subscription: Subscription, at: dt.datetime) -> Subscription:
    """Apply what became due by ``at``: trial end, period rollover, pending downgrade, cancellation.

    Called under the subscription's row lock. Decision (docs/billing.md): a trial converts to an
    active subscription at its end unless it was canceled.
    """
    changed = []
    if subscription.status == Subscription.Status.TRIALING and subscription.trial_ends_at and \
            at >= subscription.trial_ends_at:
        if subscription.cancel_at_period_end:
            subscription.status, subscription.canceled_at = Subscription.Status.CANCELED, subscription.trial_ends_at
            subscription.save(update_fields=["status", "canceled_at"])
            return subscription
        subscription.status = Subscription.Status.ACTIVE
        changed.append("status")
    if at >= subscription.current_period_end:
        if subscription.cancel_at_period_end:
            subscription.status = Subscription.Status.CANCELED
            subscription.canceled_at = subscription.current_period_end
            subscription.save(update_fields=["status", "canceled_at"])
            return subscription
        start, end = period_bounds(anchor=subscription.started_at, at=at)
        subscription.current_period_start, subscription.current_period_end = start, end
        if subscription.pending_plan_id:
            subscription.plan, subscription.pending_plan = subscription.pending_plan, None
        subscription.limits = subscription.plan.limits()  # plan changes reach subscribers at renewal
        changed += ["current_period_start", "current_period_end", "plan", "pending_plan", "limits"]
    if changed:
        subscription.save(update_fields=changed)
    return subscription


def subscription_get_live(*, company: Company, at: dt.datetime | None = None) -> Subscription:
    """The company's live subscription, brought up to date at ``at`` (rollover, trial end, ...).

    Raises:
        NoLiveSubscription(code="no_subscription"): none trialing, active or past due, or the
            company is suspended.
    """
    at = at or timezone.now()
    subscription = _live(company)
    if subscription is None or not company.is_active:
        raise NoLiveSubscription(code="no_subscription",
                                 message=f"{company} has no active subscription; answers are paused.")
    due = at >= subscription.current_period_end or (
        subscription.status == Subscription.Status.TRIALING and subscription.trial_ends_at
        and at >= subscription.trial_ends_at)
    if due:
        with transaction.atomic():
            subscription = _advance(_live(company, lock=True), at)
        if subscription.status not in Subscription.LIVE_STATUSES:
            raise NoLiveSubscription(code="no_subscription", message=f"{company}'s subscription has ended.")
    if not subscription.limits:
        subscription.limits = subscription.plan.limits()
    return subscription


def subscriptions_renew_due(*, at: dt.datetime | None = None) -> int:
    """Renew, expire or convert every live subscription that is due (the beat task's body).

    Returns:
        How many subscriptions changed.
    """
    at = at or timezone.now()
    due = Subscription.objects.filter(status__in=Subscription.LIVE_STATUSES).filter(
        current_period_end__lte=at) | Subscription.objects.filter(
        status=Subscription.Status.TRIALING, trial_ends_at__lte=at)
    count = 0
    for subscription_id in due.values_list("id", flat=True).distinct():
        with transaction.atomic():
            subscription = (Subscription.objects.select_for_update(of=("self",))
                            .select_related("plan", "pending_plan").get(id=subscription_id))
            if subscription.status in Subscription.LIVE_STATUSES:
                _advance(subscription, at)
                count += 1
    return count


@transaction.atomic
def subscription_change_plan(*, company: Company, plan: Plan, when: str = "auto",
                             at: dt.datetime | None = None) -> Subscription:
    """Move the company to ``plan``.

    Args:
        when: "now", "period_end", or "auto" (an upgrade, i.e. a higher or equal price, now; a
            downgrade at the end of the current period).

    Raises:
        NoLiveSubscription: nothing to change (use subscription_start).
        ValidationFailed(code="plan_archived" | "change_when_invalid").
    """
    if plan.is_archived:
        raise ValidationFailed(code="plan_archived", message=f"Plan '{plan.code}' is archived.")
    if when not in ("auto", "now", "period_end"):
        raise ValidationFailed(code="change_when_invalid", message="when must be auto, now or period_end.")
    subscription = _live(company, lock=True)
    if subscription is None:
        raise NoLiveSubscription(code="no_subscription", message=f"{company} has no live subscription.")
    if when == "auto":
        when = "now" if plan.price >= subscription.plan.price else "period_end"
    if when == "now":
        subscription.plan, subscription.pending_plan, subscription.limits = plan, None, plan.limits()
    else:
        subscription.pending_plan = plan
    subscription.save(update_fields=["plan", "pending_plan", "limits"])
    return subscription


@transaction.atomic
def subscription_cancel(*, company: Company, at_period_end: bool = True) -> Subscription:
    """Cancel at the end of the period (default; answers continue until then) or at once.

    Raises:
        NoLiveSubscription: nothing to cancel.
    """
    subscription = _live(company, lock=True)
    if subscription is None:
        raise NoLiveSubscription(code="no_subscription", message=f"{company} has no live subscription.")
    if at_period_end:
        subscription.cancel_at_period_end = True
        subscription.save(update_fields=["cancel_at_period_end"])
    else:
        subscription.status, subscription.canceled_at = Subscription.Status.CANCELED, timezone.now()
        subscription.save(update_fields=["status", "canceled_at"])
    return subscription


@transaction.atomic
def subscription_extend_trial(*, company: Company, days: int) -> Subscription:
    """Add ``days`` to a trialing subscription's trial.

    Raises:
        ValidationFailed(code="not_trialing").
    """
    subscription = _live(company, lock=True)
    if subscription is None or subscription.status != Subscription.Status.TRIALING:
        raise ValidationFailed(code="not_trialing", message="Only a trialing subscription has a trial to extend.")
    subscription.trial_ends_at = (subscription.trial_ends_at or timezone.now()) + dt.timedelta(days=days)
    subscription.save(update_fields=["trial_ends_at"])
    return subscription


@transaction.atomic
def plan_update(*, plan: Plan, apply_now: bool = False, **changes) -> Plan:
    """Change a plan. Subscribers get the new limits at their next period, or at once with ``apply_now``.

    Raises:
        ValidationFailed(code="plan_field_unknown").
    """
    for field, value in changes.items():
        if not hasattr(plan, field) or field in ("id", "code"):
            raise ValidationFailed(code="plan_field_unknown", message=f"Plans have no field '{field}'.")
        setattr(plan, field, value)
    plan.save()
    if apply_now:
        for subscription in Subscription.objects.select_for_update().filter(
                plan=plan, status__in=Subscription.LIVE_STATUSES):
            subscription.limits = plan.limits()
            subscription.save(update_fields=["limits"])
    return plan


def plan_get(*, code: str) -> Plan:
    """The plan with this code. Raises NotFound(code="plan_not_found")."""
    try:
        return Plan.objects.get(code=code)
    except Plan.DoesNotExist:
        raise NotFound(code="plan_not_found", message=f"No plan '{code}'.") from None


def quota_check_document_add(*, company: Company, size_bytes: int, current_documents: int,
                             current_bytes: int) -> None:
    """Refuse a new document when the plan's document count or storage would be exceeded.

    The caller (rag) counts what the company holds: ``current_documents`` and their ``current_bytes``
    (billing never reads other apps' rows). No live subscription: allowed (documents can be prepared before
    subscribing).

    Raises:
        QuotaExceeded(code="quota_documents" | "quota_storage").
    """
    subscription = _live(company)
    if subscription is None:
        return
    limits = subscription.limits or subscription.plan.limits()
    max_documents, max_storage = limits.get("max_documents"), limits.get("max_storage_bytes")
    if max_documents is not None and current_documents >= max_documents:
        raise QuotaExceeded(code="quota_documents",
                            message=f"The plan allows {max_documents} document{'' if max_documents == 1 else 's'}; delete one or upgrade.",
                            detail={"limit": max_documents})
    if max_storage is not None:
        used = current_bytes
        if used + size_bytes > max_storage:
            raise QuotaExceeded(code="quota_storage",
                                message=f"The plan allows {max_storage} bytes of documents; "
                                        f"{used} are used and this file has {size_bytes}.",
                                detail={"limit": max_storage, "used": used})


def quota_check_bot_add(*, company: Company, current_bots: int) -> None:
    """Refuse a new bot over the plan's ``max_bots``. Raises QuotaExceeded(code="quota_bots")."""
    subscription = _live(company)
    if subscription is None:
        return
    limit = (subscription.limits or subscription.plan.limits()).get("max_bots")
    if limit is not None and current_bots >= limit:
        raise QuotaExceeded(code="quota_bots", message=f"The plan allows {limit} bot{'' if limit == 1 else 's'}.", detail={"limit": limit})


DEFAULT_PLANS = [
    # code, name, price, bots, documents, storage bytes, messages/period, tokens/period, end-user messages/day
    ("free", "Free", "0.00", 1, 20, 50 * 1024 * 1024, 100, 200_000, 20),
    ("starter", "Starter", "29.00", 3, 200, 500 * 1024 * 1024, 2_000, 4_000_000, 100),
    ("business", "Business", "199.00", 20, 5_000, 10 * 1024 ** 3, 50_000, 100_000_000, None),
]


def plan_ensure_defaults() -> list[Plan]:
    """Create the default plans (free, starter, business) if missing; existing ones are left as staff set them."""
    plans = []
    for code, name, price, bots, docs, storage, messages, tokens, per_user in DEFAULT_PLANS:
        plan, _ = Plan.objects.get_or_create(code=code, defaults=dict(
            name=name, price=price, max_bots=bots, max_documents=docs, max_storage_bytes=storage,
            max_messages_per_period=messages, max_tokens_per_period=tokens,
            max_messages_per_end_user_per_day=per_user))
        plans.append(plan)
    return plans

