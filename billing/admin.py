"""Staff back office for plans, subscriptions and the ledger (platform staff only; issue 5 scopes the rest)."""
from django.contrib import admin, messages

from billing.models import LimitAlert, ModelPrice, Plan, Subscription, UsageEvent
from billing.services import plan_update, subscription_cancel, subscription_extend_trial
from saas_bot.errors import ServiceError


class StaffOnly:
    """Only superusers and staff see these pages."""

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_staff

    def has_view_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_staff


@admin.register(Plan)
class PlanAdmin(StaffOnly, admin.ModelAdmin):
    list_display = ("code", "name", "price", "currency", "trial_days", "max_messages_per_period",
                    "max_tokens_per_period", "is_public", "is_archived")
    list_filter = ("is_public", "is_archived")
    actions = ["apply_limits_now"]

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


@admin.register(Subscription)
class SubscriptionAdmin(StaffOnly, admin.ModelAdmin):
    list_display = ("company", "plan", "status", "current_period_start", "current_period_end", "trial_ends_at",
                    "cancel_at_period_end", "pending_plan")
    list_filter = ("status", "plan")
    search_fields = ("company__name", "company__slug")
    readonly_fields = ("limits",)
    actions = ["cancel_at_period_end", "extend_trial_7_days"]

    @admin.action(description="Cancel at the end of the period")
    def cancel_at_period_end(self, request, queryset):
        for subscription in queryset:
            subscription_cancel(company=subscription.company)
        messages.success(request, "Canceled at the end of their periods.")

    @admin.action(description="Extend the trial by 7 days")
    def extend_trial_7_days(self, request, queryset):
        for subscription in queryset:
            try:
                subscription_extend_trial(company=subscription.company, days=7)
            except ServiceError as exc:
                messages.error(request, f"{subscription.company}: {exc.message}")


@admin.register(ModelPrice)
class ModelPriceAdmin(StaffOnly, admin.ModelAdmin):
    list_display = ("model", "prompt_per_1k", "completion_per_1k", "currency")


@admin.register(UsageEvent)
class UsageEventAdmin(StaffOnly, admin.ModelAdmin):
    """The ledger is append-only: nobody edits or deletes events here."""

    list_display = ("occurred_at", "company", "kind", "quantity", "prompt_tokens", "completion_tokens", "model",
                    "cost", "channel")
    list_filter = ("kind", "channel")
    search_fields = ("idempotency_key", "company__slug")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(LimitAlert)
class LimitAlertAdmin(StaffOnly, admin.ModelAdmin):
    list_display = ("company", "limit", "threshold", "used", "maximum", "period_start", "created_at")
    list_filter = ("limit", "threshold")
