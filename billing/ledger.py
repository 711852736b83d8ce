"""The usage ledger: outbox -> UsageEvent (exactly once) -> derived counters, rebuild and drift check.

``usage_enqueue`` writes ``PendingUsage`` rows in the caller's transaction (the answer's) and
sends ``billing.usage_record`` after commit. The task moves one row into the ledger with
``INSERT ... ON CONFLICT (idempotency_key) DO NOTHING``, updates the counters only when the row
is new, and deletes the outbox row — all in one transaction. So a redelivered task, a worker
killed mid-task (acks_late: the message is delivered again) or a broker outage (the outbox row
waits; ``usage_sweep`` re-sends it) can neither lose nor double an event.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import time
from decimal import Decimal

from django.conf import settings
from django.core.mail import send_mail
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from billing.models import LimitAlert, ModelPrice, PendingUsage, Subscription, UsageEvent
from saas_bot.tasking import enqueue, enqueue_on_commit
from tenants.models import Company

logger = logging.getLogger("saas_bot.billing")

ALERT_THRESHOLDS = (80, 100)  # percent of a limit at which the company's admins are told, once per period


def usage_enqueue(*, company: Company, idempotency_key: str, period_start: dt.datetime, bot_id: int | None = None,
                  end_user_id: int | None = None, kind: str = UsageEvent.Kind.MESSAGE, quantity: int = 1,
                  prompt_tokens: int = 0, completion_tokens: int = 0, model: str = "", channel: str = "telegram",
                  occurred_at: dt.datetime | None = None, tokens_estimated: bool = False) -> bool:
    """Put one usage event in the outbox (in the caller's transaction) and record it after commit.

    ``tokens_estimated``: the token figures were counted by us (``rag.usage``), the provider reported none.

    Returns:
        False if an event with this key is already pending or recorded (nothing written).
    """
    payload = {
        "company_id": company.id, "period_start": period_start.isoformat(), "bot_id": bot_id,
        "end_user_id": end_user_id, "kind": str(kind), "quantity": quantity, "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens, "model": model[:100], "channel": channel,
        "occurred_at": (occurred_at or timezone.now()).isoformat(), "tokens_estimated": bool(tokens_estimated),
    }
    if UsageEvent.objects.filter(idempotency_key=idempotency_key).exists():
        return False
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO billing_pendingusage (idempotency_key, payload, attempts, created_at) "
            "VALUES (%s, %s::jsonb, 0, now()) ON CONFLICT (idempotency_key) DO NOTHING RETURNING id",
            [idempotency_key, json.dumps(payload)],
        )
        created = cursor.fetchone() is not None
    if created:
        from billing.tasks import usage_record_task

        enqueue_on_commit(usage_record_task, idempotency_key)
    return created


_PRICE_CACHE_SECONDS = 60.0
_price_cache: tuple[float, dict[str, ModelPrice]] = (0.0, {})


def _prices() -> dict[str, ModelPrice]:
    """The price table, cached per process for a minute (it is read for every usage event)."""
    global _price_cache
    now = time.monotonic()
    if _price_cache[0] <= now:
        _price_cache = (now + _PRICE_CACHE_SECONDS, {p.model: p for p in ModelPrice.objects.all()})
    return _price_cache[1]


def model_price_cache_clear() -> None:
    """Forget the cached price table (after staff change prices in this process; tests)."""
    global _price_cache
    _price_cache = (0.0, {})


def model_cost(*, model: str, prompt_tokens: int, completion_tokens: int) -> Decimal:
    """Cost of a call from ``ModelPrice`` (price per 1,000 tokens); 0 for models without a price.

    Providers report dated model names ("gpt-4o-mini-2024-07-18"): the longest priced prefix applies.
    """
    prices = _prices()
    price = prices.get(model)
    if price is None and model:
        price = max((p for name, p in prices.items() if model.startswith(name)), key=lambda p: len(p.model),
                    default=None)
    if price is None:
        return Decimal(0)
    return (price.prompt_per_1k * prompt_tokens + price.completion_per_1k * completion_tokens) / Decimal(1000)


def usage_record(*, idempotency_key: str) -> bool:
    """Move one outbox row into the ledger and the counters; exactly once per key.

    Returns:
        True if this call wrote the ledger row; False if there was nothing to do (already
        recorded, or no such pending event).
    """
    with transaction.atomic():
        pending = PendingUsage.objects.select_for_update(skip_locked=True).filter(
            idempotency_key=idempotency_key).first()
        if pending is None:
            return False
        p = pending.payload
        cost = model_cost(model=p["model"], prompt_tokens=p["prompt_tokens"],
                          completion_tokens=p["completion_tokens"])
        with connection.cursor() as cursor:
            cursor.execute(
                """
                INSERT INTO billing_usageevent (idempotency_key, company_id, bot_id, end_user_id, kind, quantity,
                    prompt_tokens, completion_tokens, model, cost, channel, period_start, occurred_at,
                    tokens_estimated, created_at)
                VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, now())
                ON CONFLICT (idempotency_key) DO NOTHING
                """,
                [idempotency_key, p["company_id"], p["bot_id"], p["end_user_id"], p["kind"], p["quantity"],
                 p["prompt_tokens"], p["completion_tokens"], p["model"], cost, p["channel"], p["period_start"],
                 p["occurred_at"], bool(p.get("tokens_estimated", False))],
            )
            created = cursor.rowcount == 1
            if created:
                _counters_add(cursor, p, cost)
        pending.delete()
    if created:
        limit_alerts_check(company_id=p["company_id"])
    return created


def _counters_add(cursor, p: dict, cost: Decimal) -> None:
    is_message = p["kind"] == UsageEvent.Kind.MESSAGE
    llm = p["prompt_tokens"] + p["completion_tokens"] if p["kind"] == UsageEvent.Kind.LLM_TOKENS else 0
    embedding = p["quantity"] if p["kind"] == UsageEvent.Kind.EMBEDDING_TOKENS else 0
    cursor.execute(
        """
        INSERT INTO billing_usagecounter (company_id, period_start, messages, tokens, embedding_tokens, cost, updated_at)
        VALUES (%s, %s, %s, %s, %s, %s, now())
        ON CONFLICT (company_id, period_start) DO UPDATE SET
            messages = billing_usagecounter.messages + EXCLUDED.messages,
            tokens = billing_usagecounter.tokens + EXCLUDED.tokens,
            embedding_tokens = billing_usagecounter.embedding_tokens + EXCLUDED.embedding_tokens,
            cost = billing_usagecounter.cost + EXCLUDED.cost, updated_at = now()
        """,
        [p["company_id"], p["period_start"], 1 if is_message else 0, llm, embedding, cost],
    )
    if is_message and p["end_user_id"] is not None:
        cursor.execute(
            """
            INSERT INTO billing_enduserdailycounter (company_id, end_user_id, day, messages)
            VALUES (%s, %s, (%s::timestamptz AT TIME ZONE 'UTC')::date, 1)
            ON CONFLICT (company_id, end_user_id, day) DO UPDATE
            SET messages = billing_enduserdailycounter.messages + 1
            """,
            [p["company_id"], p["end_user_id"], p["occurred_at"]],
        )


def usage_record_failed(*, idempotency_key: str, error: BaseException) -> None:
    """Record that moving an outbox row into the ledger failed for a reason a retry cannot fix (a bug, bad
    data): the row keeps the error in ``last_error``, the sweep leaves it, ``usage_check`` reports it (exit 1)
    and ``usage_check --retry-failed`` sends it again once the cause is fixed."""
    message = f"{type(error).__name__}: {error}"[:2000]
    logger.error("usage event %s could not be recorded: %s", idempotency_key, message)
    PendingUsage.objects.filter(idempotency_key=idempotency_key).update(last_error=message)


def usage_sweep(*, older_than_seconds: int = 30) -> int:
    """Re-send outbox rows older than ``older_than_seconds`` (broker was down); returns how many.

    Rows whose recording failed for a non-transient reason (``last_error``) are left for an operator.
    """
    from billing.tasks import usage_record_task  # billing.tasks imports this module

    cutoff = timezone.now() - dt.timedelta(seconds=older_than_seconds)
    keys = list(PendingUsage.objects.filter(created_at__lt=cutoff, last_error="").order_by("created_at")
                .values_list("idempotency_key", flat=True)[:5000])
    PendingUsage.objects.filter(idempotency_key__in=keys).update(attempts=F("attempts") + 1)
    for key in keys:
        enqueue(usage_record_task, key)
    return len(keys)


# The counters as the ledger says they should be; the rebuild inserts these rows and the drift
# check compares the counters with them, so both read the ledger the same way.
_LEDGER_BY_PERIOD = """
    SELECT company_id, period_start,
           count(*) FILTER (WHERE kind = 'message') AS messages,
           coalesce(sum(prompt_tokens + completion_tokens) FILTER (WHERE kind = 'llm_tokens'), 0) AS tokens,
           coalesce(sum(quantity) FILTER (WHERE kind = 'embedding_tokens'), 0) AS embedding_tokens,
           coalesce(sum(cost), 0) AS cost
    FROM billing_usageevent {where} GROUP BY company_id, period_start
"""
_LEDGER_BY_END_USER_DAY = """
    SELECT company_id, end_user_id, (occurred_at AT TIME ZONE 'UTC')::date AS day, count(*) AS messages
    FROM billing_usageevent {where} {and_} kind = 'message' AND end_user_id IS NOT NULL
    GROUP BY company_id, end_user_id, (occurred_at AT TIME ZONE 'UTC')::date
"""


def _company_filter(company: Company | None) -> tuple[dict[str, str], list]:
    if company is None:
        return {"where": "", "and_": "WHERE"}, []
    return {"where": "WHERE company_id = %s", "and_": "AND"}, [company.id]


@transaction.atomic
def usage_rebuild(*, company: Company | None = None) -> dict[str, int]:
    """Recompute the derived counters from the ledger (all companies, or one). Returns row counts."""
    sql, params = _company_filter(company)
    with connection.cursor() as cursor:
        # Lock out concurrent recorders of these companies while the counters are replaced.
        cursor.execute("LOCK TABLE billing_usagecounter, billing_enduserdailycounter IN EXCLUSIVE MODE")
        cursor.execute(f"DELETE FROM billing_usagecounter {sql['where']}", params)
        cursor.execute(f"DELETE FROM billing_enduserdailycounter {sql['where']}", params)
        cursor.execute("INSERT INTO billing_usagecounter (company_id, period_start, messages, tokens, "
                       "embedding_tokens, cost, updated_at) SELECT *, now() FROM ("
                       + _LEDGER_BY_PERIOD.format(**sql) + ") ledger", params)
        company_rows = cursor.rowcount
        cursor.execute("INSERT INTO billing_enduserdailycounter (company_id, end_user_id, day, messages) "
                       + _LEDGER_BY_END_USER_DAY.format(**sql), params)
        user_rows = cursor.rowcount
    return {"company_period_counters": company_rows, "end_user_day_counters": user_rows}


def usage_drift(*, company: Company | None = None) -> list[dict]:
    """Differences between the counters and the ledger; an empty list means they agree.

    Returns:
        [{"company_id", "period_start" or "day", "end_user_id"?, "field", "counter", "ledger"}].
    """
    sql, params = _company_filter(company)
    drift: list[dict] = []
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH ledger AS ({_LEDGER_BY_PERIOD.format(**sql)}),
            counters AS (SELECT company_id, period_start, messages, tokens, embedding_tokens, cost
                         FROM billing_usagecounter {sql['where']})
            SELECT coalesce(l.company_id, c.company_id), coalesce(l.period_start, c.period_start),
                   l.messages, c.messages, l.tokens, c.tokens, l.embedding_tokens, c.embedding_tokens, l.cost, c.cost
            FROM ledger l FULL JOIN counters c ON l.company_id = c.company_id AND l.period_start = c.period_start
            """,
            params + params,
        )
        for row in cursor.fetchall():
            company_id, period = row[0], row[1]
            for i, field in enumerate(("messages", "tokens", "embedding_tokens", "cost")):
                ledger_value, counter_value = row[2 + 2 * i] or 0, row[3 + 2 * i] or 0
                if ledger_value != counter_value:
                    drift.append({"company_id": company_id, "period_start": period.isoformat(), "field": field,
                                  "counter": str(counter_value), "ledger": str(ledger_value)})
        cursor.execute(
            f"""
            WITH ledger AS ({_LEDGER_BY_END_USER_DAY.format(**sql)}),
            counters AS (SELECT company_id, end_user_id, day, messages FROM billing_enduserdailycounter {sql['where']})
            SELECT coalesce(l.company_id, c.company_id), coalesce(l.end_user_id, c.end_user_id),
                   coalesce(l.day, c.day), l.messages, c.messages
            FROM ledger l FULL JOIN counters c
              ON l.company_id = c.company_id AND l.end_user_id = c.end_user_id AND l.day = c.day
            WHERE coalesce(l.messages, 0) <> coalesce(c.messages, 0)
            """,
            params + params,
        )
        for company_id, end_user_id, day, ledger_value, counter_value in cursor.fetchall():
            drift.append({"company_id": company_id, "end_user_id": end_user_id, "day": day.isoformat(),
                          "field": "messages", "counter": str(counter_value or 0), "ledger": str(ledger_value or 0)})
    return drift


def limit_alerts_check(*, company_id: int) -> list[LimitAlert]:
    """Create the 80 % / 100 % alerts a company has newly reached this period and email its admins.

    Limits checked: answered messages and LLM tokens per period (from the ledger's counters).
    Each (period, limit, threshold) alerts once (unique constraint).
    """
    from billing.models import UsageCounter

    subscription = (Subscription.objects.select_related("company", "plan")
                    .filter(company_id=company_id, status__in=Subscription.LIVE_STATUSES).first())
    if subscription is None:
        return []
    limits = subscription.limits or subscription.plan.limits()
    counter = UsageCounter.objects.filter(company_id=company_id,
                                          period_start=subscription.current_period_start).first()
    if counter is None:
        return []
    created: list[LimitAlert] = []
    for limit, used in (("max_messages_per_period", counter.messages), ("max_tokens_per_period", counter.tokens)):
        maximum = limits.get(limit)
        if not maximum:
            continue
        for threshold in ALERT_THRESHOLDS:
            if used * 100 >= maximum * threshold:
                alert, new = LimitAlert.objects.get_or_create(
                    company_id=company_id, period_start=subscription.current_period_start, limit=limit,
                    threshold=threshold, defaults={"used": used, "maximum": maximum})
                if new:
                    created.append(alert)
    for alert in created:
        transaction.on_commit(lambda alert=alert: _alert_email(subscription.company, alert))
    return created


def _alert_email(company: Company, alert: LimitAlert) -> None:
    from tenants.models import Membership

    recipients = list(Membership.objects.filter(company=company, role__in=["owner", "admin"])
                      .exclude(user__email="").values_list("user__email", flat=True))
    if not recipients:
        return
    label = {"max_messages_per_period": "answered messages", "max_tokens_per_period": "LLM tokens"}[alert.limit]
    subject = f"[saas_bot] {company.name}: {alert.threshold}% of this period's {label} used"
    body = (f"{company.name} has used {alert.used} of {alert.maximum} {label} in the period that started "
            f"{alert.period_start:%Y-%m-%d}.\n" + ("At 100 % the bots answer with the limit message until the "
                                                   "next period or an upgrade.\n" if alert.threshold >= 100 else ""))
    try:
        send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, recipients)
    except Exception:  # the banner in the admin still shows the alert
        logger.exception("limit alert email to %s failed", recipients)
