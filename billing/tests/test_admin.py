"""Staff change plans in the admin; the change reaches subscribers at their next period."""
import pytest

from billing.models import Plan, Subscription
from billing.services import subscription_start
from tenants.services import company_create

pytestmark = pytest.mark.django_db


def test_staff_edit_a_plan_and_apply_it_now(admin_client):
    plan = Plan.objects.create(code="p", name="P", price=5, max_messages_per_period=10)
    subscription_start(company=company_create(name="A", slug="a"), plan=plan)
    data = {"code": "p", "name": "P", "price": "5", "currency": "EUR", "trial_days": 0, "is_public": "on",
            "max_messages_per_period": 20, "limit_message": ""}
    response = admin_client.post(f"/admin/billing/plan/{plan.id}/change/", data)
    assert response.status_code == 302
    assert Subscription.objects.get().limits["max_messages_per_period"] == 10  # next period
    admin_client.post("/admin/billing/plan/", {"action": "apply_limits_now", "_selected_action": [plan.id]})
    assert Subscription.objects.get().limits["max_messages_per_period"] == 20


def test_the_ledger_cannot_be_edited_in_the_admin(admin_client):
    assert admin_client.get("/admin/billing/usageevent/add/").status_code == 403


def test_limit_alert_banner_in_the_admin(admin_client):
    from billing.models import LimitAlert
    from billing.services import subscription_get_live

    company = company_create(name="Busy Co", slug="busy")
    plan = Plan.objects.create(code="b", name="B", max_messages_per_period=10)
    subscription_start(company=company, plan=plan)
    period = subscription_get_live(company=company).current_period_start
    LimitAlert.objects.create(company=company, period_start=period, limit="max_messages_per_period", threshold=80,
                              used=8, maximum=10)
    page = " ".join(admin_client.get("/admin/").content.decode().split())
    assert "Busy Co: 80% of this period's answered messages used (8 of 10)" in page
