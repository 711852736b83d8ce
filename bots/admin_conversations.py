"""Conversations, their answers and end users in the admin: read-only, scoped to the signed-in company."""
from __future__ import annotations

from django.contrib import admin
from django.utils.html import format_html, format_html_join

from bots.models import Chat, Conversation, Message, TelegramUser
from tenants.admin_scoping import CompanyScopedAdmin, CompanyScopedInline


class ReadOnlyMixin:
    """Logs: nobody adds, changes or deletes them here."""

    def has_add_permission(self, request, *args):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(TelegramUser)
class TelegramUserAdmin(ReadOnlyMixin, CompanyScopedAdmin):
    list_display = ("__str__", "first_name", "last_name", "language_code", "bot", "first_seen_at", "last_seen_at")
    list_filter = ("bot", "language_code")
    search_fields = ("username", "first_name", "last_name")
    exclude = ("telegram_user_id",)
    readonly_fields = ("telegram_user_id_text",)

    @admin.display(description="Telegram user id")
    def telegram_user_id_text(self, obj):
        return str(obj.telegram_user_id)  # an identifier: no thousands separators


@admin.register(Chat)
class ChatAdmin(ReadOnlyMixin, CompanyScopedAdmin):
    list_display = ("__str__", "type", "bot", "is_forum", "is_blocked", "created_at")
    list_filter = ("bot", "type", "is_blocked")
    search_fields = ("title", "username")
    exclude = ("telegram_chat_id",)
    readonly_fields = ("telegram_chat_id_text",)

    @admin.display(description="Telegram chat id")
    def telegram_chat_id_text(self, obj):
        return str(obj.telegram_chat_id)  # an identifier: no thousands separators


def render_sources(sources: list[dict]) -> str:
    """Sources of an answer as a readable list: title (file), section, page."""
    if not sources:
        return "—"
    items = []
    for source in sources:
        where = ", ".join(part for part in (source.get("section") or "",
                                            f"page {source['page']}" if source.get("page") else "") if part)
        items.append((source.get("title") or source.get("document") or "?", source.get("document") or "",
                      f" — {where}" if where else ""))
    return format_html('<ol class="sources">{}</ol>',
                       format_html_join("", "<li><strong>{}</strong> <small>({})</small>{}</li>", items))


class FeedbackFilter(admin.SimpleListFilter):
    title = "feedback"
    parameter_name = "feedback"

    def lookups(self, request, model_admin):
        return (("up", "👍"), ("down", "👎"), ("none", "No feedback"))

    def queryset(self, request, queryset):
        prefix = "" if queryset.model is Message else "messages__"
        value = self.value()
        if value == "up":
            return queryset.filter(**{f"{prefix}feedback": 1}).distinct()
        if value == "down":
            return queryset.filter(**{f"{prefix}feedback": -1}).distinct()
        if value == "none":
            return queryset.filter(**{f"{prefix}feedback__isnull": True}).distinct()
        return queryset


class MessageInline(CompanyScopedInline, admin.StackedInline):
    model = Message
    extra = 0
    can_delete = False
    fields = ("created_at", "question", "answer", "status", "sources_list", "tokens", "feedback")
    readonly_fields = fields
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="Sources")
    def sources_list(self, obj):
        return render_sources(obj.sources)

    @admin.display(description="Tokens (prompt + completion)")
    def tokens(self, obj):
        return f"{obj.prompt_tokens} + {obj.completion_tokens}"


@admin.register(Conversation)
class ConversationAdmin(ReadOnlyMixin, CompanyScopedAdmin):
    list_display = ("started_at", "bot", "who", "channel", "message_count", "last_message_at", "ended_at")
    list_filter = ("bot", "channel", ("started_at", admin.DateFieldListFilter), "messages__status", FeedbackFilter)
    search_fields = ("messages__question", "end_user__username", "chat__title")
    date_hierarchy = "started_at"
    inlines = [MessageInline]
    fields = ("bot", "channel", "who", "started_at", "last_message_at", "ended_at")
    readonly_fields = fields

    def get_queryset(self, request):
        from django.db.models import Count

        return super().get_queryset(request).select_related("bot", "end_user", "chat").annotate(
            _messages=Count("messages"))

    @admin.display(description="End user")
    def who(self, obj):
        return str(obj.end_user or obj.chat or obj.get_channel_display())

    @admin.display(description="Messages", ordering="_messages")
    def message_count(self, obj):
        return obj._messages


@admin.register(Message)
class MessageAdmin(ReadOnlyMixin, CompanyScopedAdmin):
    list_display = ("created_at", "bot", "short_question", "status", "feedback", "total_tokens", "latency_ms")
    list_filter = ("bot", "status", ("created_at", admin.DateFieldListFilter), "conversation__channel",
                   FeedbackFilter)
    search_fields = ("question", "answer")
    date_hierarchy = "created_at"
    fields = ("created_at", "bot", "conversation", "question", "answer", "status", "sources_list", "prompt_tokens",
              "completion_tokens", "model", "latency_ms", "feedback", "delivered_at", "delivery_error")
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("bot", "conversation")

    @admin.display(description="Question")
    def short_question(self, obj):
        return obj.question if len(obj.question) <= 80 else obj.question[:79] + "…"

    @admin.display(description="Tokens")
    def total_tokens(self, obj):
        return obj.prompt_tokens + obj.completion_tokens

    @admin.display(description="Sources")
    def sources_list(self, obj):
        return render_sources(obj.sources)
