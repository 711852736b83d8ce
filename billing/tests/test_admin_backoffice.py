"""Staff back office: assign a plan, change it, extend a trial, cancel, archive plans."""
import pytest

from billing.models import Plan, Subscription
from tenants.services import company_create

pytestmark = pytest.mark.django_db


def test_assign_change_extend_cancel(admin_client):
    company = company_create(name="Globex", slug="globex")
    trial = Plan.objects.create(code="trial", name="Trial", price=0, trial_days=14)
    pro = Plan.objects.create(code="pro", name="Pro", price=50, max_messages_per_period=5000)
    old = Plan.objects.create(code="old", name="Old", price=10, is_archived=True)

    response = admin_client.post("/admin/billing/subscription/add/", {"company": company.pk, "plan": old.pk})
    assert response.status_code == 200 and not Subscription.objects.exists()  # archived: not offered
    assert admin_client.post("/admin/billing/subscription/add/",
                             {"company": company.pk, "plan": trial.pk}).status_code == 302
    subscription = Subscription.objects.get()
    assert subscription.status == "trialing"
    ends = subscription.trial_ends_at

    url = f"/admin/billing/subscription/{subscription.pk}/change/"
    assert admin_client.post(url, {"extend_trial_days": 7, "change_when": "auto"}).status_code == 302
    subscription.refresh_from_db()
    assert (subscription.trial_ends_at - ends).days == 7
    assert admin_client.post(url, {"change_plan_to": pro.pk, "change_when": "now"}).status_code == 302
    subscription.refresh_from_db()
    assert subscription.plan == pro and subscription.limits["max_messages_per_period"] == 5000
    response = admin_client.post(url, {"extend_trial_days": 3, "change_when": "auto"})
    assert response.status_code == 302  # still trialing on Pro: the trial is extended again
    assert admin_client.post(url, {"cancel": "now", "change_when": "auto"}).status_code == 302
    subscription.refresh_from_db()
    assert subscription.status == "canceled"
    response = admin_client.post(url, {"extend_trial_days": 3, "change_when": "auto"})
    assert response.status_code == 200 and "(not_trialing)" in response.content.decode()


def test_archive_a_plan(admin_client):
    plan = Plan.objects.create(code="legacy", name="Legacy", price=5)
    admin_client.post("/admin/billing/plan/", {"action": "archive", "_selected_action": [plan.pk]})
    plan.refresh_from_db()
    assert plan.is_archived
    page = admin_client.get("/admin/billing/subscription/add/").content.decode()
    assert "Legacy" not in page
    assert admin_client.post(f"/admin/billing/plan/{plan.pk}/delete/", {"post": "yes"}).status_code == 403


def test_the_subscription_forms_validate_without_writing_and_a_refusal_keeps_nothing(admin_client):
    """clean() calls no service (issue 12); the change form's services run in the save, all or none."""
    from billing.admin import SubscriptionAssignForm, SubscriptionChangeForm
    from billing.services import subscription_start

    company = company_create(name="Globex", slug="globex")
    basic = Plan.objects.create(code="basic", name="Basic", price=10)
    pro = Plan.objects.create(code="pro", name="Pro", price=50)
    assert SubscriptionAssignForm(data={"company": company.pk, "plan": basic.pk}).is_valid()
    assert not Subscription.objects.exists()
    subscription = subscription_start(company=company, plan=basic)  # active: no trial to extend
    form = SubscriptionChangeForm(data={"change_plan_to": pro.pk, "change_when": "now"}, instance=subscription)
    assert form.is_valid() and [f.__name__ for f, _ in form.changes()] == ["subscription_change_plan"]
    subscription.refresh_from_db()
    assert subscription.plan == basic

    url = f"/admin/billing/subscription/{subscription.pk}/change/"
    response = admin_client.post(url, {"change_plan_to": pro.pk, "change_when": "now", "extend_trial_days": 3})
    assert response.status_code == 200 and "(not_trialing)" in response.content.decode()
    subscription.refresh_from_db()
    assert subscription.plan == basic  # the plan change before the refused extension was rolled back
