"""Reads on usage: current period against limits, daily series, top end users, staff report, CSV."""
from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Callable

from django.db import connection
from django.db.models import Count, Sum

from billing.models import LIMIT_FIELDS, LimitAlert, QuotaWindow, Subscription, UsageCounter, UsageEvent
from billing.quotas import SCOPE_COMPANY
from billing.services import subscription_get_live
from tenants.models import Company

# What a company holds in the apps above billing (bots, documents, storage) is counted by those apps: each
# registers a counter for the plan limit it owns when Django starts (bots/apps.py, rag/apps.py), so billing
# never reads their rows (docs/architecture.md, "Layers"). An unregistered limit counts 0.
_HOLDING_COUNTERS: dict[str, Callable[[Company], int]] = {}


def holding_counter_register(*, limit: str, counter: Callable[[Company], int]) -> None:
    """Register how to count what a company holds against ``limit`` (a plan limit of ``LIMIT_FIELDS``)."""
    if limit not in LIMIT_FIELDS:
        raise ValueError(f"{limit!r} is not a plan limit")
    _HOLDING_COUNTERS[limit] = counter


def _holding(company: Company, limit: str) -> int:
    counter = _HOLDING_COUNTERS.get(limit)
    return int(counter(company)) if counter is not None else 0

# Credits: a provider-neutral unit derived from cost, so plans can be sold in credits weighted by
# model price. 1 credit = 0.001 of the price currency (ModelPrice.currency).
CREDITS_PER_CURRENCY_UNIT = 1000


@dataclass
class LimitUsage:
    """One limit of the current period: what is used, the maximum (None = unlimited), percent."""

    limit: str
    used: int
    maximum: int | None
    percent: float | None


def usage_current(*, company: Company) -> dict:
    """The current period against every limit of the company's plan.

    Returns:
        {"plan", "status", "period_start", "period_end", "limits": [LimitUsage as dict], "cost",
         "credits", "alerts": [{"limit", "threshold"}]}.

    Raises:
        NoLiveSubscription.
    """
    subscription = subscription_get_live(company=company)
    limits = subscription.limits or subscription.plan.limits()
    period = subscription.current_period_start
    gate = QuotaWindow.objects.filter(company=company, scope=SCOPE_COMPANY, subject=0, window_start=period).first()
    counter = UsageCounter.objects.filter(company=company, period_start=period).first()
    used = {
        "max_bots": _holding(company, "max_bots"),
        "max_documents": _holding(company, "max_documents"),
        "max_storage_bytes": _holding(company, "max_storage_bytes"),
        # Reserved messages: what the gate counts (includes answers still being recorded).
        "max_messages_per_period": gate.messages if gate else 0,
        "max_tokens_per_period": counter.tokens if counter else 0,
        "max_messages_per_end_user_per_day": _busiest_end_user_today(company),
    }
    rows = []
    for field in LIMIT_FIELDS:
        maximum = limits.get(field)
        value = int(used[field])
        rows.append(asdict(LimitUsage(field, value, maximum,
                                      round(100 * value / maximum, 1) if maximum else None)))
    cost = counter.cost if counter else Decimal(0)
    alerts = list(LimitAlert.objects.for_company(company).filter(period_start=period, dismissed_at__isnull=True)
                  .values("limit", "threshold"))
    return {"plan": subscription.plan.code, "status": subscription.status, "period_start": period,
            "period_end": subscription.current_period_end, "limits": rows, "cost": cost,
            "credits": int(cost * CREDITS_PER_CURRENCY_UNIT), "alerts": alerts}


def _busiest_end_user_today(company: Company) -> int:
    from billing.quotas import SCOPE_END_USER, day_start
    from django.utils import timezone

    top = (QuotaWindow.objects.filter(company=company, scope=SCOPE_END_USER, window_start=day_start(timezone.now()))
           .order_by("-messages").values_list("messages", flat=True).first())
    return top or 0


def usage_daily(*, company: Company, start: dt.date, end: dt.date, bot_id: int | None = None) -> list[dict]:
    """Per UTC day from ``start`` to ``end`` inclusive (days without usage included, as zeros).

    Returns:
        [{"day": date, "messages": int, "tokens": int, "cost": Decimal}], from the ledger.
    """
    bot_filter = "AND bot_id = %s" if bot_id is not None else ""
    params = [start, end, company.id, start, end] + ([bot_id] if bot_id is not None else [])
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH days AS (SELECT generate_series(%s::date, %s::date, interval '1 day')::date AS day)
            SELECT d.day, coalesce(count(e.id) FILTER (WHERE e.kind = 'message'), 0),
                   coalesce(sum(e.prompt_tokens + e.completion_tokens) FILTER (WHERE e.kind = 'llm_tokens'), 0),
                   coalesce(sum(e.cost), 0)
            FROM days d LEFT JOIN billing_usageevent e
              ON (e.occurred_at AT TIME ZONE 'UTC')::date = d.day AND e.company_id = %s
                 AND e.occurred_at >= %s::date AND e.occurred_at < %s::date + 1 {bot_filter}
            GROUP BY d.day ORDER BY d.day
            """,
            params,
        )
        return [{"day": r[0], "messages": int(r[1]), "tokens": int(r[2]), "cost": r[3]} for r in cursor.fetchall()]


def usage_top_end_users(*, company: Company, period_start: dt.datetime, limit: int = 10) -> list[dict]:
    """The end users with the most answered messages in the period: [{"end_user_id", "messages"}]."""
    rows = (UsageEvent.objects.for_company(company)
            .filter(period_start=period_start, kind=UsageEvent.Kind.MESSAGE, end_user_id__isnull=False)
            .values("end_user_id").annotate(messages=Count("id")).order_by("-messages", "end_user_id")[:limit])
    return list(rows)


def usage_report(*, start: dt.datetime, end: dt.datetime) -> list[dict]:
    """Staff report across companies for events in [start, end): one row per company.

    Returns:
        [{"company", "slug", "plan", "messages", "tokens", "embedding_tokens", "cost", "credits"}].
    """
    rows = []
    plans = dict(Subscription.objects.filter(status__in=Subscription.LIVE_STATUSES)
                 .values_list("company_id", "plan__code"))
    aggregates = (UsageEvent.objects.filter(occurred_at__gte=start, occurred_at__lt=end)
                  .values("company_id")
                  .annotate(messages=Count("id", filter=_kind(UsageEvent.Kind.MESSAGE)),
                            prompt=Sum("prompt_tokens", filter=_kind(UsageEvent.Kind.LLM_TOKENS)),
                            completion=Sum("completion_tokens", filter=_kind(UsageEvent.Kind.LLM_TOKENS)),
                            embedding=Sum("quantity", filter=_kind(UsageEvent.Kind.EMBEDDING_TOKENS)),
                            cost=Sum("cost")))
    by_company = {a["company_id"]: a for a in aggregates}
    for company in Company.objects.order_by("slug"):
        a = by_company.get(company.id, {})
        cost = a.get("cost") or Decimal(0)
        rows.append({"company": company.name, "slug": company.slug, "plan": plans.get(company.id, ""),
                     "messages": a.get("messages") or 0,
                     "tokens": (a.get("prompt") or 0) + (a.get("completion") or 0),
                     "embedding_tokens": a.get("embedding") or 0, "cost": cost,
                     "credits": int(cost * CREDITS_PER_CURRENCY_UNIT)})
    return rows


def _kind(kind: str):
    from django.db.models import Q

    return Q(kind=kind)


def rows_to_csv(rows: list[dict]) -> str:
    """CSV text (header from the first row's keys) for any list of flat dicts; text cells a spreadsheet
    would run as a formula are neutralised (``saas_bot.spreadsheets``, OWASP's rule)."""
    from saas_bot.spreadsheets import rows_to_csv_text

    return rows_to_csv_text(rows)


def usage_daily_by_bot(*, company: Company, start: dt.date, end: dt.date, bots: dict[int, str]) -> list[dict]:
    """Per UTC day from ``start`` to ``end`` inclusive and per bot of the company (zeros included), from the ledger.

    One query for the dashboard's charts (``usage_daily`` gives one bot or the whole company). Events
    without a bot (document embeddings) are left out. ``bots``: the company's bots, id -> name as shown
    (``bots.selectors.bot_names``; the caller reads them, billing does not).

    Returns:
        [{"day": date, "bot_id": int, "bot": str ("@username" or name), "messages": int, "tokens": int}],
        ordered by bot then day; [] when the company has no bot.
    """
    if not bots:
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT (e.occurred_at AT TIME ZONE 'UTC')::date AS day, e.bot_id,
                   count(e.id) FILTER (WHERE e.kind = 'message'),
                   coalesce(sum(e.prompt_tokens + e.completion_tokens) FILTER (WHERE e.kind = 'llm_tokens'), 0)
            FROM billing_usageevent e
            WHERE e.company_id = %s AND e.bot_id IS NOT NULL
              AND e.occurred_at >= %s::date AND e.occurred_at < %s::date + 1
            GROUP BY 1, 2
            """,
            [company.id, start, end],
        )
        found = {(r[0], r[1]): (int(r[2]), int(r[3])) for r in cursor.fetchall()}
    days = [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
    return [{"day": day, "bot_id": bot_id, "bot": name, "messages": found.get((day, bot_id), (0, 0))[0],
             "tokens": found.get((day, bot_id), (0, 0))[1]}
            for bot_id, name in bots.items() for day in days]


def usage_limits_all() -> list[dict]:
    """Staff view: every company with a live subscription, its current period against every plan limit.

    Returns:
        [{"company": Company, "plan", "status", "period_start", "period_end", "limits": [LimitUsage as dict]}]
        ordered by company name (``usage_current`` per company; companies without a live subscription
        are left out).
    """
    from saas_bot.errors import NoLiveSubscription

    rows = []
    for company in Company.objects.filter(subscriptions__status__in=Subscription.LIVE_STATUSES).distinct() \
            .order_by("name"):
        try:
            current = usage_current(company=company)
        except NoLiveSubscription:
            continue
        rows.append({"company": company, **{k: current[k] for k in ("plan", "status", "period_start",
                                                                     "period_end", "limits")}})
    return rows


def usage_limits_csv_rows(rows: list[dict]) -> list[dict]:
    """Flatten ``usage_limits_all()`` rows for ``rows_to_csv``: one column pair ``<limit>_used``/``<limit>_max``
    per limit (empty max = unlimited)."""
    flat = []
    for row in rows:
        out = {"company": row["company"].name, "slug": row["company"].slug, "plan": row["plan"],
               "status": row["status"], "period_start": row["period_start"].date().isoformat(),
               "period_end": row["period_end"].date().isoformat() if row["period_end"] else ""}
        for limit in row["limits"]:
            out[f"{limit['limit']}_used"] = limit["used"]
            out[f"{limit['limit']}_max"] = "" if limit["maximum"] is None else limit["maximum"]
        flat.append(out)
    return flat
