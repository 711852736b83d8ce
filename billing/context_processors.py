"""Template context for the admin: the limit alerts a signed-in user should see as a banner."""
from __future__ import annotations

from django.http import HttpRequest

from billing.models import LimitAlert, Subscription
from tenants.access import is_platform_staff

LIMIT_LABELS = {"max_messages_per_period": "answered messages", "max_tokens_per_period": "LLM tokens"}


def limit_alerts(request: HttpRequest) -> dict:
    """``limit_alerts``: this period's undismissed 80 %/100 % alerts of the user's companies.

    Company members see their companies' alerts; platform staff (``tenants.access``, not ``is_staff``:
    members have it too) see every company's. Only admin pages ask.
    """
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or not request.path.startswith("/admin/"):
        return {}
    periods = Subscription.objects.filter(status__in=Subscription.LIVE_STATUSES)
    if not is_platform_staff(user):
        periods = periods.filter(company__memberships__user=user)
    current = {(company_id, start) for company_id, start in periods.values_list("company_id", "current_period_start")}
    alerts = (LimitAlert.objects.filter(dismissed_at__isnull=True, company_id__in={c for c, _ in current})
              .select_related("company").order_by("company__name", "-threshold"))
    shown, seen = [], set()
    for alert in alerts:
        key = (alert.company_id, alert.limit)
        if (alert.company_id, alert.period_start) in current and key not in seen:
            seen.add(key)  # the highest threshold per limit is enough
            shown.append({"company": alert.company.name, "threshold": alert.threshold,
                          "what": LIMIT_LABELS.get(alert.limit, alert.limit), "used": alert.used,
                          "maximum": alert.maximum})
    return {"limit_alerts": shown}
