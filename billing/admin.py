"""Staff back office for plans, subscriptions and the ledger (platform staff only; issue 5 scopes the rest).

Forms validate; the saves call ``billing.services``, and a refusal is shown on the form (``saas_bot.admin_save``).
"""
from typing import Callable

from django.contrib import admin, messages

from django import forms

from billing.models import LimitAlert, ModelPrice, Plan, Subscription, UsageEvent
from billing.money import cost_currency, money_format
from billing.services import (plan_update, subscription_cancel, subscription_change_plan, subscription_extend_trial,
                              subscription_start)
from saas_bot.admin_save import RefusalShownAdmin, SaveRefused, with_save_refusal
from saas_bot.errors import ServiceError
from tenants.admin_scoping import StaffOnlyAdmin


class StaffOnly(StaffOnlyAdmin):
    """Platform staff only (``tenants.access.is_platform_staff``; company members have ``is_staff`` too)."""


@admin.register(Plan)
class PlanAdmin(StaffOnly):
    list_display = ("code", "name", "price_display", "trial_days", "max_messages_per_period",
                    "max_tokens_per_period", "is_public", "is_archived")

    @admin.display(description="Price", ordering="price")
    def price_display(self, obj):
        return money_format(obj.price, obj.currency)
    list_filter = ("is_public", "is_archived")
    actions = ["apply_limits_now", "archive", "unarchive"]

    def save_model(self, request, obj, form, change):
        """A change reaches subscribers at their next period (billing.services.plan_update)."""
        if not change:
            super().save_model(request, obj, form, change)
            return
        plan_update(plan=obj, **{field: form.cleaned_data[field] for field in form.changed_data})
        messages.info(request, "Subscribers get the new limits from their next period. "
                               "Use “Apply limits to current subscribers now” to change them at once.")

    @admin.action(description="Apply limits to current subscribers now")
    def apply_limits_now(self, request, queryset):
        for plan in queryset:
            plan_update(plan=plan, apply_now=True)
        messages.success(request, f"Limits applied now to the subscribers of {queryset.count()} plan(s).")

    @admin.action(description="Archive selected plans (current subscribers keep them; nobody new can get them)")
    def archive(self, request, queryset):
        for plan in queryset:
            plan_update(plan=plan, is_archived=True)
        messages.success(request, f"Archived {queryset.count()} plan(s).")

    @admin.action(description="Unarchive selected plans")
    def unarchive(self, request, queryset):
        for plan in queryset:
            plan_update(plan=plan, is_archived=False)
        messages.success(request, f"{queryset.count()} plan(s) can be assigned again.")

    def has_delete_permission(self, request, obj=None):
        return False  # archive instead: subscriptions keep pointing at their plan


class SubscriptionAssignForm(forms.ModelForm):
    """Assign a plan to a company. Validates only; ``SubscriptionAdmin.save_form`` calls ``subscription_start``
    (any live subscription is canceled first)."""

    class Meta:
        model = Subscription
        fields = ["company", "plan"]
        help_texts = {"plan": "Archived plans cannot be assigned. A plan with a trial starts trialing."}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["plan"].queryset = Plan.objects.filter(is_archived=False)

    def _post_clean(self):
        # No model validation of a new row: subscription_start creates it in the admin's save and cancels the
        # company's live subscription first, which the one-live-per-company constraint would call a conflict.
        pass


class SubscriptionChangeForm(forms.ModelForm):
    """Change plan / extend the trial / cancel. Validates only; ``SubscriptionAdmin.save_form`` calls
    ``billing.services`` (``changes()`` lists what was asked)."""

    change_plan_to = forms.ModelChoiceField(Plan.objects.filter(is_archived=False), required=False,
                                            help_text="Archived plans are not offered.")
    change_when = forms.ChoiceField(choices=[("auto", "Upgrade now, downgrade at the period end"),
                                             ("now", "Now"), ("period_end", "At the end of the period")],
                                    initial="auto", required=False)
    extend_trial_days = forms.IntegerField(min_value=1, max_value=365, required=False,
                                           help_text="Days added to a trialing subscription's trial.")
    cancel = forms.ChoiceField(choices=[("", "—"), ("period_end", "At the end of the period"), ("now", "Now")],
                               required=False)

    class Meta:
        model = Subscription
        fields: list[str] = []

    def changes(self) -> list[tuple[Callable, dict]]:
        """The services this form asks for, in order: (function, keyword arguments) without the company."""
        cleaned = self.cleaned_data
        asked = []
        if cleaned.get("change_plan_to"):
            asked.append((subscription_change_plan, {"plan": cleaned["change_plan_to"],
                                                     "when": cleaned.get("change_when") or "auto"}))
        if cleaned.get("extend_trial_days"):
            asked.append((subscription_extend_trial, {"days": cleaned["extend_trial_days"]}))
        if cleaned.get("cancel"):
            asked.append((subscription_cancel, {"at_period_end": cleaned["cancel"] == "period_end"}))
        return asked


@admin.register(Subscription)
class SubscriptionAdmin(RefusalShownAdmin, StaffOnly):
    list_display = ("company", "plan", "status", "current_period_start", "current_period_end", "trial_ends_at",
                    "cancel_at_period_end", "pending_plan")
    list_filter = ("status", "plan")
    search_fields = ("company__name", "company__slug")
    actions = ["cancel_at_period_end", "extend_trial_7_days"]
    readonly_fields = ("company", "plan", "status", "started_at", "current_period_start", "current_period_end",
                       "trial_ends_at", "cancel_at_period_end", "pending_plan", "limits", "canceled_at")

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["company", "plan"]
        return list(self.readonly_fields) + ["change_plan_to", "change_when", "extend_trial_days", "cancel"]

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else self.readonly_fields

    def get_form(self, request, obj=None, change=False, **kwargs):
        kwargs["form"] = SubscriptionChangeForm if obj is not None else SubscriptionAssignForm
        kwargs["fields"] = (["change_plan_to", "change_when", "extend_trial_days", "cancel"] if obj is not None
                            else ["company", "plan"])
        return with_save_refusal(request, super().get_form(request, obj, change=change, **kwargs))

    def save_form(self, request, form, change):
        """Assigning: ``subscription_start``. Changing: the form's services in order (plan, trial, cancel), all
        or none: a refusal rolls the earlier ones back and is shown on the form."""
        try:
            if not change:
                return subscription_start(company=form.cleaned_data["company"], plan=form.cleaned_data["plan"])
            subscription = form.instance
            for service, arguments in form.changes():
                service(company=subscription.company, **arguments)
        except ServiceError as exc:
            raise SaveRefused.of(exc) from None
        subscription.refresh_from_db()
        return subscription

    def save_model(self, request, obj, form, change):
        pass  # save_form called the services

    def save_related(self, request, form, formsets, change):
        pass  # no many-to-many fields; the services wrote everything

    def has_delete_permission(self, request, obj=None):
        return False  # cancel instead: the history of subscriptions is kept

    @admin.action(description="Cancel at the end of the period")
    def cancel_at_period_end(self, request, queryset):
        for subscription in queryset:
            try:
                subscription_cancel(company=subscription.company)
            except ServiceError as exc:
                messages.error(request, f"{subscription.company}: {exc.message}")
        messages.success(request, "Live subscriptions are canceled at the end of their periods.")

    @admin.action(description="Extend the trial by 7 days")
    def extend_trial_7_days(self, request, queryset):
        for subscription in queryset:
            try:
                subscription_extend_trial(company=subscription.company, days=7)
            except ServiceError as exc:
                messages.error(request, f"{subscription.company}: {exc.message}")


@admin.register(ModelPrice)
class ModelPriceAdmin(StaffOnly):
    list_display = ("model", "prompt_price", "completion_price")

    @admin.display(description="Prompt, per 1,000 tokens", ordering="prompt_per_1k")
    def prompt_price(self, obj):
        return money_format(obj.prompt_per_1k, obj.currency, precise=True)

    @admin.display(description="Completion, per 1,000 tokens", ordering="completion_per_1k")
    def completion_price(self, obj):
        return money_format(obj.completion_per_1k, obj.currency, precise=True)


@admin.register(UsageEvent)
class UsageEventAdmin(StaffOnly):
    """The ledger is append-only: nobody edits or deletes events here."""

    list_display = ("occurred_at", "company", "kind", "quantity", "prompt_tokens", "completion_tokens", "model",
                    "cost_display", "channel")

    @admin.display(description="Cost", ordering="cost")
    def cost_display(self, obj):
        return money_format(obj.cost, cost_currency(), precise=True)
    list_filter = ("kind", "channel")
    search_fields = ("idempotency_key", "company__slug")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(LimitAlert)
class LimitAlertAdmin(StaffOnly):
    list_display = ("company", "limit", "threshold", "used", "maximum", "period_start", "created_at")
    list_filter = ("limit", "threshold")
