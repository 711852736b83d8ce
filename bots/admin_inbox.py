"""The Telegram inbox in the admin (platform staff): find stuck or failed updates and retry them."""
from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.contrib import admin, messages
from django.db.models import Q
from django.utils import timezone

from bots.inbox import claim_stale_seconds, updates_retry
from bots.models import TelegramUpdate
from tenants.admin_scoping import StaffOnlyAdmin


class StuckFilter(admin.SimpleListFilter):
    title = "needs attention"
    parameter_name = "attention"

    def lookups(self, request, model_admin):
        return (("stuck", "Stuck (pending or processing too long)"), ("failed", "Failed"))

    def queryset(self, request, queryset):
        now = timezone.now()
        if self.value() == "stuck":
            # An update waiting for its not_before (Telegram's 429, a later send slot) is not stuck until due.
            return queryset.filter(
                Q(status=TelegramUpdate.Status.PENDING,
                  received_at__lt=now - dt.timedelta(seconds=settings.TELEGRAM_INBOX_STALE_SECONDS))
                & (Q(not_before__isnull=True) | Q(not_before__lt=now))
                | Q(status=TelegramUpdate.Status.PROCESSING,
                    locked_at__lt=now - dt.timedelta(seconds=claim_stale_seconds())))
        if self.value() == "failed":
            return queryset.filter(status=TelegramUpdate.Status.FAILED)
        return queryset


@admin.register(TelegramUpdate)
class TelegramUpdateAdmin(StaffOnlyAdmin):
    """The Telegram inbox (platform staff): find stuck or failed updates and retry them."""

    list_display = ("received_at", "company", "bot", "update_id_text", "status", "attempts", "short_error",
                    "processed_at")
    list_filter = (StuckFilter, "status", ("company", admin.RelatedOnlyFieldListFilter))
    search_fields = ("update_id", "bot__username", "error")
    actions = ["retry"]
    readonly_fields = ("company", "bot", "update_id_text", "payload", "status", "attempts", "error", "received_at",
                       "locked_at", "locked_by", "not_before", "sent_message_ids", "processed_at")
    fields = readonly_fields

    def has_add_permission(self, request, *args):
        return False

    @admin.display(description="Update id", ordering="update_id")
    def update_id_text(self, obj):
        return str(obj.update_id)  # an identifier: no thousands separators (USE_THOUSAND_SEPARATOR)

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="Error")
    def short_error(self, obj):
        return obj.error[:100]

    @admin.action(description="Retry selected updates (process them again)", permissions=["view"])
    def retry(self, request, queryset):
        count = updates_retry(update_pks=list(queryset.values_list("pk", flat=True)))
        messages.success(request, f"{count} update(s) queued again.")
