"""Writes on plans, subscriptions and usage: quota reservation and the usage ledger.

Rules (ARCHITECTURE.md, "Plans and usage"): limits are checked before work is
done; the reservation is atomic in PostgreSQL (the company's counter row is
locked with SELECT ... FOR UPDATE), so N concurrent messages against M
remaining answer exactly min(N, M); usage is recorded after, once per
idempotency key (unique constraint + INSERT ... ON CONFLICT DO NOTHING).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from dateutil.relativedelta import relativedelta
from django.db import connection, transaction
from django.db.models import F, Sum
from django.db.models.functions import Greatest
from django.utils import timezone

from billing.models import Plan, QuotaReservation, Subscription, UsageCounter, UsageEvent
from saas_bot.errors import NoLiveSubscription, QuotaExceeded
from tenants.models import Company


def period_bounds(*, anchor: dt.datetime, at: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """The monthly period containing ``at``, anchored to ``anchor`` (the subscription start).

    A period runs from anchor + n months to anchor + (n+1) months; relativedelta
    clamps to the month's last day (anchor Jan 31 -> Feb 28/29).
    """
    months = (at.year - anchor.year) * 12 + (at.month - anchor.month)
    start = anchor + relativedelta(months=months)
    if start > at:
        months -= 1
        start = anchor + relativedelta(months=months)
    return start, anchor + relativedelta(months=months + 1)


@transaction.atomic
def subscription_start(*, company: Company, plan: Plan, at: dt.datetime | None = None) -> Subscription:
    """Subscribe ``company`` to ``plan`` from ``at`` (default now); trialing if the plan has trial days.

    Any live subscription of the company is canceled first (one live per company).
    """
    at = at or timezone.now()
    Subscription.objects.for_company(company).filter(status__in=Subscription.LIVE_STATUSES).update(
        status=Subscription.Status.CANCELED
    )
    start, end = period_bounds(anchor=at, at=at)
    status = Subscription.Status.TRIALING if plan.trial_days else Subscription.Status.ACTIVE
    return Subscription.objects.create(company=company, plan=plan, status=status, started_at=at,
                                       current_period_start=start, current_period_end=end)


def subscription_get_live(*, company: Company, at: dt.datetime | None = None) -> Subscription:
    """The company's live subscription, its current period rolled forward to ``at`` if it ended.

    Raises:
        NoLiveSubscription(code="no_subscription"): none trialing, active or past due.
    """
    at = at or timezone.now()
    subscription = (Subscription.objects.for_company(company).select_related("plan")
                    .filter(status__in=Subscription.LIVE_STATUSES).first())
    if subscription is None or not company.is_active:
        raise NoLiveSubscription(code="no_subscription",
                                 message=f"{company} has no active subscription; answers are paused.")
    if at >= subscription.current_period_end:
        start, end = period_bounds(anchor=subscription.started_at, at=at)
        Subscription.objects.filter(id=subscription.id, current_period_end__lte=at).update(
            current_period_start=start, current_period_end=end)
        subscription.current_period_start, subscription.current_period_end = start, end
    return subscription


@dataclass(frozen=True)
class Reservation:
    """A reserved answered message: the key it was reserved under and its period."""

    idempotency_key: str
    period_start: dt.datetime
    created: bool


def quota_reserve_message(*, company: Company, idempotency_key: str) -> Reservation:
    """Reserve one answered message of the current period, atomically; idempotent per key.

    Args:
        idempotency_key: the message's key (e.g. ``tg:<bot id>:<update_id>``); the same key
            reserved again returns the first reservation and counts nothing more.

    Raises:
        NoLiveSubscription: the company cannot answer at all.
        QuotaExceeded(code="quota_messages"): the plan's ``max_messages_per_period`` is used up.
    """
    subscription = subscription_get_live(company=company)
    period_start = subscription.current_period_start
    limit = subscription.plan.max_messages_per_period
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO billing_usagecounter (company_id, period_start, messages, tokens, updated_at) "
                "VALUES (%s, %s, 0, 0, now()) ON CONFLICT (company_id, period_start) DO NOTHING",
                [company.id, period_start],
            )
        counter = UsageCounter.objects.select_for_update().get(company=company, period_start=period_start)
        existing = QuotaReservation.objects.filter(idempotency_key=idempotency_key).first()
        if existing:
            return Reservation(idempotency_key, existing.period_start, created=False)
        if limit is not None and counter.messages >= limit:
            raise QuotaExceeded(code="quota_messages",
                                message=f"The plan's limit of {limit} messages per period is reached.",
                                detail={"limit": limit, "used": counter.messages})
        counter.messages += 1
        counter.save(update_fields=["messages", "updated_at"])
        QuotaReservation.objects.create(company=company, period_start=period_start, idempotency_key=idempotency_key)
    return Reservation(idempotency_key, period_start, created=True)


@transaction.atomic
def quota_release_message(*, company: Company, idempotency_key: str) -> bool:
    """Give back a reservation whose message was never answered. Returns whether one was released."""
    reservation = QuotaReservation.objects.select_for_update().filter(idempotency_key=idempotency_key).first()
    if reservation is None or UsageEvent.objects.filter(idempotency_key=idempotency_key).exists():
        return False
    UsageCounter.objects.select_for_update().filter(company=company, period_start=reservation.period_start).update(
        messages=Greatest(F("messages") - 1, 0))
    reservation.delete()
    return True


def usage_record(*, company: Company, idempotency_key: str, period_start: dt.datetime, bot_id: int | None = None,
                 end_user_id: int | None = None, kind: str = UsageEvent.Kind.MESSAGE, quantity: int = 1,
                 prompt_tokens: int = 0, completion_tokens: int = 0, model: str = "",
                 channel: str = "telegram") -> bool:
    """Write one usage event to the ledger, exactly once per ``idempotency_key``.

    Token counts are the provider's reported usage (0 for the extractive answerer).

    Returns:
        True if this call wrote the event, False if it was already recorded.
    """
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                """
                INSERT INTO billing_usageevent (idempotency_key, company_id, bot_id, end_user_id, kind, quantity,
                    prompt_tokens, completion_tokens, model, channel, period_start, created_at)
                VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, now())
                ON CONFLICT (idempotency_key) DO NOTHING
                """,
                [idempotency_key, company.id, bot_id, end_user_id, kind, quantity, prompt_tokens,
                 completion_tokens, model[:100], channel, period_start],
            )
            created = cursor.rowcount == 1
        if created and (prompt_tokens or completion_tokens):
            UsageCounter.objects.filter(company=company, period_start=period_start).update(
                tokens=F("tokens") + prompt_tokens + completion_tokens)
    return created


def quota_check_document_add(*, company: Company, size_bytes: int) -> None:
    """Refuse a new document when the plan's document count or storage would be exceeded.

    No live subscription: allowed (documents can be prepared before subscribing).

    Raises:
        QuotaExceeded(code="quota_documents" | "quota_storage").
    """
    from rag.models import Document

    subscription = (Subscription.objects.for_company(company).select_related("plan")
                    .filter(status__in=Subscription.LIVE_STATUSES).first())
    if subscription is None:
        return
    plan = subscription.plan
    documents = Document.objects.for_company(company)
    if plan.max_documents is not None and documents.count() >= plan.max_documents:
        raise QuotaExceeded(code="quota_documents",
                            message=f"The plan allows {plan.max_documents} documents; delete one or upgrade.",
                            detail={"limit": plan.max_documents})
    if plan.max_storage_bytes is not None:
        used = documents.aggregate(total=Sum("size_bytes"))["total"] or 0
        if used + size_bytes > plan.max_storage_bytes:
            raise QuotaExceeded(code="quota_storage",
                                message=f"The plan allows {plan.max_storage_bytes} bytes of documents; "
                                        f"{used} are used and this file has {size_bytes}.",
                                detail={"limit": plan.max_storage_bytes, "used": used})


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
