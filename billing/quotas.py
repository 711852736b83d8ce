"""Quota reservation: checked and reserved before work is done, atomically in PostgreSQL.

Every reservation of a company first locks the company's ``QuotaWindow`` row for the period
(``SELECT ... FOR UPDATE``), so reservations of one company are serialised and N concurrent
messages against M remaining answer exactly min(N, M). Under that lock the bot's window (its
cap within the plan) and the end user's daily window are checked and incremented too: quotas
stack plan/company -> bot -> end user.

Tokens: a reservation adds an estimate of the answer's tokens (prompt estimate + the completion
cap) to the company window; settling replaces it by the provider's reported usage. A message is
admitted while reserved + used tokens are below the limit, so the overshoot past the limit is
bounded by the last admitted answer (its actual tokens beyond what was left) — see docs/billing.md.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db import connection, transaction
from django.db.models import F
from django.db.models.functions import Greatest
from django.utils import timezone

from billing.models import QuotaReservation, QuotaWindow
from saas_bot.errors import QuotaExceeded
from tenants.models import Company

SCOPE_COMPANY, SCOPE_BOT, SCOPE_END_USER = "company", "bot", "end_user"


@dataclass(frozen=True)
class Reservation:
    """A reserved answered message: its key, period, and the tokens reserved for it."""

    idempotency_key: str
    period_start: dt.datetime
    created: bool
    tokens_reserved: int = 0


def day_start(at: dt.datetime) -> dt.datetime:
    """Midnight UTC of ``at``'s day: the window of per-end-user daily limits."""
    at = at.astimezone(dt.timezone.utc)
    return at.replace(hour=0, minute=0, second=0, microsecond=0)


def _window(company_id: int, scope: str, subject: int, start: dt.datetime, *, lock: bool) -> QuotaWindow:
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO billing_quotawindow (company_id, scope, subject, window_start, messages, tokens) "
            "VALUES (%s, %s, %s, %s, 0, 0) ON CONFLICT (company_id, scope, subject, window_start) DO NOTHING",
            [company_id, scope, subject, start],
        )
    qs = QuotaWindow.objects.filter(company_id=company_id, scope=scope, subject=subject, window_start=start)
    return qs.select_for_update().get() if lock else qs.get()


def quota_reserve(*, company: Company, idempotency_key: str, bot=None, end_user_id: int | None = None,
                  estimated_tokens: int = 0, at: dt.datetime | None = None) -> Reservation:
    """Reserve one answered message (and ``estimated_tokens``) in every window that limits it.

    Args:
        idempotency_key: the message's key; reserving it again returns the first reservation.
        bot: the answering bot (its ``max_messages_per_period`` caps it within the plan).
        end_user_id: the Telegram user, for the plan's messages per end user per day.
        estimated_tokens: LLM tokens this answer may use (0 for extractive answers).

    Raises:
        NoLiveSubscription: the company cannot answer at all.
        QuotaExceeded: code "quota_messages" (plan, per period), "quota_tokens" (plan, per period),
            "quota_bot_messages" (the bot's cap), "quota_end_user_daily" (per end user per day).
            ``detail`` has the limit and the scope.
    """
    from billing.services import subscription_get_live

    at = at or timezone.now()
    subscription = subscription_get_live(company=company, at=at)
    limits = subscription.limits
    period = subscription.current_period_start
    with transaction.atomic():
        gate = _window(company.id, SCOPE_COMPANY, 0, period, lock=True)
        existing = QuotaReservation.objects.filter(idempotency_key=idempotency_key).first()
        if existing:
            return Reservation(idempotency_key, existing.period_start, False, existing.tokens_reserved)
        max_messages = limits.get("max_messages_per_period")
        if max_messages is not None and gate.messages >= max_messages:
            raise QuotaExceeded(code="quota_messages", message=f"The plan's {max_messages} messages per period "
                                "are used up.", detail={"limit": max_messages, "scope": "period"})
        max_tokens = limits.get("max_tokens_per_period")
        if max_tokens is not None and estimated_tokens and gate.tokens >= max_tokens:
            raise QuotaExceeded(code="quota_tokens", message=f"The plan's {max_tokens} tokens per period are used up.",
                                detail={"limit": max_tokens, "scope": "period"})
        bot_window = None
        bot_cap = getattr(bot, "max_messages_per_period", None)
        if bot is not None:
            bot_window = _window(company.id, SCOPE_BOT, bot.id, period, lock=True)
            if bot_cap is not None and bot_window.messages >= bot_cap:
                raise QuotaExceeded(code="quota_bot_messages", message=f"This bot's {bot_cap} messages per period "
                                    "are used up.", detail={"limit": bot_cap, "scope": "bot"})
        user_window = None
        per_user = limits.get("max_messages_per_end_user_per_day")
        day = day_start(at)
        if end_user_id is not None:
            user_window = _window(company.id, SCOPE_END_USER, end_user_id, day, lock=True)
            if per_user is not None and user_window.messages >= per_user:
                raise QuotaExceeded(code="quota_end_user_daily", message=f"{per_user} messages per day per user "
                                    "are used up.", detail={"limit": per_user, "scope": "end_user"})
        QuotaWindow.objects.filter(id=gate.id).update(messages=F("messages") + 1,
                                                      tokens=F("tokens") + estimated_tokens)
        for window in (bot_window, user_window):
            if window is not None:
                QuotaWindow.objects.filter(id=window.id).update(messages=F("messages") + 1)
        QuotaReservation.objects.create(company=company, period_start=period, idempotency_key=idempotency_key,
                                        bot_id=getattr(bot, "id", None), end_user_id=end_user_id, day=day,
                                        tokens_reserved=estimated_tokens)
    return Reservation(idempotency_key, period, True, estimated_tokens)


def quota_settle(*, company: Company, idempotency_key: str, actual_tokens: int) -> None:
    """Replace the reservation's token estimate by the provider-reported ``actual_tokens``; once per key."""
    with transaction.atomic():
        reservation = (QuotaReservation.objects.select_for_update()
                       .filter(idempotency_key=idempotency_key, settled=False).first())
        if reservation is None:
            return
        QuotaWindow.objects.filter(company=company, scope=SCOPE_COMPANY, subject=0,
                                   window_start=reservation.period_start).update(
            tokens=Greatest(F("tokens") + (actual_tokens - reservation.tokens_reserved), 0))
        reservation.settled = True
        reservation.save(update_fields=["settled"])


def _give_back(company_id: int, scope: str, subject: int, start) -> None:
    QuotaWindow.objects.filter(company_id=company_id, scope=scope, subject=subject, window_start=start).update(
        messages=Greatest(F("messages") - 1, 0))


@transaction.atomic
def quota_release_message(*, company: Company, idempotency_key: str) -> bool:
    """Give back a reservation whose message was never answered. Returns whether one was released.

    A message whose usage is already recorded (outbox or ledger) is never released.
    """
    from billing.models import PendingUsage, UsageEvent

    reservation = QuotaReservation.objects.select_for_update().filter(idempotency_key=idempotency_key).first()
    if reservation is None or reservation.settled:
        return False
    keys = [idempotency_key, f"{idempotency_key}:llm"]
    if UsageEvent.objects.filter(idempotency_key__in=keys).exists() or \
            PendingUsage.objects.filter(idempotency_key__in=keys).exists():
        return False
    _window(company.id, SCOPE_COMPANY, 0, reservation.period_start, lock=True)
    QuotaWindow.objects.filter(company=company, scope=SCOPE_COMPANY, subject=0,
                               window_start=reservation.period_start).update(
        messages=Greatest(F("messages") - 1, 0),
        tokens=Greatest(F("tokens") - reservation.tokens_reserved, 0))
    if reservation.bot_id is not None:
        _give_back(company.id, SCOPE_BOT, reservation.bot_id, reservation.period_start)
    if reservation.end_user_id is not None and reservation.day is not None:
        _give_back(company.id, SCOPE_END_USER, reservation.end_user_id, reservation.day)
    reservation.delete()
    return True


@transaction.atomic
def quota_release_undelivered(*, company: Company, idempotency_key: str) -> bool:
    """Give back the message of an answer that was computed but never delivered (docs/billing.md).

    Only the message count is given back, in the company, bot and end-user windows; the tokens the answer
    used stay counted (the provider billed them). The reservation is kept, marked settled, so a redelivery
    reserves nothing again. A message whose usage event exists (it was delivered) is never released.

    Returns:
        Whether a message was given back.
    """
    from billing.models import PendingUsage, UsageEvent

    reservation = QuotaReservation.objects.select_for_update().filter(idempotency_key=idempotency_key).first()
    if reservation is None or reservation.released:
        return False
    if UsageEvent.objects.filter(idempotency_key=idempotency_key).exists() or \
            PendingUsage.objects.filter(idempotency_key=idempotency_key).exists():
        return False
    _window(company.id, SCOPE_COMPANY, 0, reservation.period_start, lock=True)
    _give_back(company.id, SCOPE_COMPANY, 0, reservation.period_start)
    if reservation.bot_id is not None:
        _give_back(company.id, SCOPE_BOT, reservation.bot_id, reservation.period_start)
    if reservation.end_user_id is not None and reservation.day is not None:
        _give_back(company.id, SCOPE_END_USER, reservation.end_user_id, reservation.day)
    QuotaReservation.objects.filter(id=reservation.id).update(released=True)
    return True


def limit_notice_claim(*, company: Company, end_user_id: int, at: dt.datetime | None = None) -> bool:
    """True the first time today that this end user hits a limit (send the limit message then only)."""
    day = day_start(at or timezone.now()).date()
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO billing_limitnotice (company_id, end_user_id, day) VALUES (%s, %s, %s) "
            "ON CONFLICT (company_id, end_user_id, day) DO NOTHING RETURNING id",
            [company.id, end_user_id, day],
        )
        return cursor.fetchone() is not None


def end_user_quota_today(*, company: Company, end_user_id: int, at: dt.datetime | None = None) -> dict | None:
    """What an end user has left today under the plan's ``max_messages_per_end_user_per_day`` (the /usage command).

    Returns:
        {"limit": int, "used": int, "remaining": int, "resets_at": datetime (next midnight UTC)}, or None when
        the plan sets no per-end-user limit (or there is no live subscription).
    """
    from billing.services import subscription_get_live
    from saas_bot.errors import NoLiveSubscription

    at = at or timezone.now()
    try:
        limit = subscription_get_live(company=company, at=at).limits.get("max_messages_per_end_user_per_day")
    except NoLiveSubscription:
        return None
    if limit is None:
        return None
    day = day_start(at)
    used = (QuotaWindow.objects.filter(company=company, scope=SCOPE_END_USER, subject=end_user_id, window_start=day)
            .values_list("messages", flat=True).first() or 0)
    return {"limit": limit, "used": used, "remaining": max(0, limit - used), "resets_at": day + dt.timedelta(days=1)}
