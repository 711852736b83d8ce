"""Bots, conversations and end users for company admins; the Telegram inbox for platform staff.

Every write goes through ``bots.lifecycle`` and ``bots.telegram_setup`` (connect, replace token, enable/disable, delete, webhook);
service errors become form errors or admin messages, never a 500.
"""
from __future__ import annotations

import datetime as dt

from django import forms
from django.contrib import admin, messages
from django.db.models import Q
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from bots.lifecycle import bot_connect, bot_delete, bot_replace_token, bot_set_status
from bots.models import Bot, Chat, Conversation, Message, TelegramUpdate, TelegramUser
from bots.telegram_setup import bot_register_webhook, bot_webhook_info
from saas_bot.admin_site import reverse_or_none
from saas_bot.errors import ServiceError
from tenants.access import current_company, is_platform_staff
from tenants.admin_scoping import CompanyScopedAdmin, CompanyScopedInline, StaffOnlyAdmin, scope_to_user


class BotAddForm(forms.ModelForm):
    """Connect a bot: paste the token from @BotFather; ``bot_connect`` checks it with getMe."""

    token = forms.CharField(
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off", "size": 60}),
        help_text="From @BotFather (/newbot or /token), like 123456789:AAE…  It is checked with Telegram, "
                  "stored encrypted and never shown again.")
    name = forms.CharField(required=False, max_length=100,
                           help_text="How the bot is called in this admin; empty = its Telegram name.")
    class Meta:
        model = Bot
        fields: list[str] = []  # nothing is copied onto a model instance: bot_connect creates the bot

    def __init__(self, *args, company=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.target_company = company
        if company is None:  # platform staff choose the company
            from tenants.models import Company

            self.fields["company_choice"] = forms.ModelChoiceField(Company.objects.all(), label="Company")

    def clean(self):
        cleaned = super().clean()
        token = cleaned.get("token")
        company = self.target_company or cleaned.get("company_choice")
        if not token or company is None:
            return cleaned
        try:
            # Connecting is the one write of this form; it happens here so Telegram's refusal is a form error.
            self.instance = bot_connect(company=company, token=token, name=cleaned.get("name") or "")
        except ServiceError as exc:
            raise forms.ValidationError(f"{exc.message} ({exc.code})", code=exc.code) from None
        return cleaned


class BotChangeForm(forms.ModelForm):
    new_token = forms.CharField(
        required=False, widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off", "size": 60}),
        help_text="Only after @BotFather /revoke: paste the new token of the same bot; chats and usage are kept.")

    class Meta:
        model = Bot
        fields = ["name", "persona", "welcome_text", "help_text", "language", "limit_message",
                  "max_messages_per_period", "edited_messages", "conversation_idle_minutes", "collections"]
        widgets = {"persona": forms.Textarea(attrs={"rows": 4}), "welcome_text": forms.Textarea(attrs={"rows": 3}),
                   "help_text": forms.Textarea(attrs={"rows": 3}), "limit_message": forms.Textarea(attrs={"rows": 2})}
        help_texts = {"persona": "The system prompt: tone and rules of the answers (answers always come from your "
                                 "documents).",
                      "welcome_text": "Sent on /start.", "help_text": "Sent on /help.",
                      "language": "Language code of the bot's fixed texts, e.g. en, de, fr."}

    def clean(self):
        cleaned = super().clean()
        token = cleaned.get("new_token")
        if token and not self.errors:
            fresh = Bot.objects.get(pk=self.instance.pk)
            try:
                fresh = bot_replace_token(bot=fresh, token=token)
            except ServiceError as exc:
                self.add_error("new_token", f"{exc.message} ({exc.code})")
                return cleaned
            for field in ("token_encrypted", "token_hint", "username", "telegram_id", "status", "last_error"):
                setattr(self.instance, field, getattr(fresh, field))
        return cleaned


@admin.register(Bot)
class BotAdmin(CompanyScopedAdmin):
    list_display = ("__str__", "name", "status", "token_hint", "webhook_state", "created_at")
    list_display_links = ("__str__", "name")
    list_filter = ("status", "language")
    search_fields = ("name", "username")
    autocomplete_fields = ("collections",)
    actions = ["export_csv", "disable_bots", "enable_bots"]
    change_form_template = "admin/bots/bot/change_form.html"
    fieldsets = (
        (None, {"fields": ("name", "username", "telegram_id_text", "status", "token_hint", "new_token")}),
        ("Answers", {"fields": ("persona", "welcome_text", "help_text", "language", "limit_message",
                                "collections")}),
        ("Limits and behaviour", {"fields": ("max_messages_per_period", "edited_messages",
                                             "conversation_idle_minutes")}),
        ("Webhook", {"fields": ("webhook_url", "webhook_health", "last_error")}),
    )
    readonly_fields = ("username", "telegram_id_text", "status", "token_hint", "webhook_url", "webhook_health",
                       "last_error")

    @admin.display(description="Telegram id")
    def telegram_id_text(self, obj):
        return str(obj.telegram_id or "—")  # an identifier: no thousands separators (USE_THOUSAND_SEPARATOR)

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            fields = ["token", "name"] + ([] if current_company(request) and not is_platform_staff(request.user)
                                          else ["company_choice"])
            return ((None, {"fields": fields}),)
        return self.fieldsets

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else self.readonly_fields

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            company = None if is_platform_staff(request.user) else current_company(request)
            base = BotAddForm

            class Form(base):
                def __init__(self, *args, **kw):
                    super().__init__(*args, company=company, **kw)

            return Form
        kwargs["form"] = BotChangeForm
        kwargs["fields"] = BotChangeForm.Meta.fields + ["new_token"]
        return super().get_form(request, obj, change=change, **kwargs)

    def get_exclude(self, request, obj=None):
        return ["company"] if obj is not None else []

    def get_fields(self, request, obj=None):
        return [f for fs in self.get_fieldsets(request, obj) for f in fs[1]["fields"]]

    def save_model(self, request, obj, form, change):
        if not change:
            messages.success(request, f"Connected {obj} (Telegram id {obj.telegram_id}). The token is stored "
                                      f"encrypted; only {obj.token_hint} is shown from now on.")
            return  # bot_connect saved it in the form's clean
        fields = [f for f in form.changed_data if f in BotChangeForm.Meta.fields and f != "collections"]
        if "new_token" in form.changed_data:
            fields += ["token_encrypted", "token_hint", "username", "telegram_id", "status", "last_error"]
            messages.success(request, f"Token replaced; {obj} is active again.")
        if fields:
            obj.save(update_fields=fields)

    def save_related(self, request, form, formsets, change):
        if change:
            super().save_related(request, form, formsets, change)

    def delete_model(self, request, obj):
        bot_delete(bot=obj)  # deleteWebhook first

    def delete_queryset(self, request, queryset):
        for bot in queryset:
            bot_delete(bot=bot)

    @admin.display(description="Webhook")
    def webhook_state(self, obj):
        if obj.status != Bot.Status.ACTIVE:
            return "—"
        return "registered" if obj.webhook_url else "not registered"

    @admin.display(description="Webhook health (from Telegram)")
    def webhook_health(self, obj):
        try:
            info = bot_webhook_info(bot=obj)
        except ServiceError as exc:
            return format_html('<span class="errornote">{} ({})</span>', exc.message, exc.code)
        rows = [("URL", info["url"] or "none registered"),
                ("URL matches this server", "yes" if info["matches"] else "no"),
                ("Updates waiting at Telegram", info["pending_update_count"]),
                ("Last delivery error", info["last_error_message"] or "none")]
        if info["last_error_date"]:
            rows.append(("Last error at", f"{info['last_error_date']:%Y-%m-%d %H:%M:%S} UTC"))
        if info["allowed_updates"]:
            rows.append(("Update kinds", ", ".join(info["allowed_updates"])))
        return format_html('<table class="webhook-health">{}</table>',
                           format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", rows))

    def get_urls(self):
        return [path("<path:object_id>/register-webhook/", self.admin_site.admin_view(self.register_webhook_view),
                     name="bots_bot_register_webhook")] + super().get_urls()

    def register_webhook_view(self, request, object_id):
        """POST: ``bot_register_webhook`` (setWebhook with the secret and allowed updates)."""
        bot = self.get_object(request, object_id)
        if request.method != "POST" or not self.has_change_permission(request, bot):
            raise Http404
        try:
            url = bot_register_webhook(bot=bot)
            messages.success(request, f"Webhook registered: {url}")
        except ServiceError as exc:
            messages.error(request, f"{exc.message} ({exc.code})")
        return HttpResponseRedirect(reverse("admin:bots_bot_change", args=[bot.pk]))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = dict(extra_context or {})
        extra_context["playground_url"] = reverse_or_none("admin-playground", object_id)
        return super().change_view(request, object_id, form_url, extra_context)

    @admin.action(description="Disable selected bots (deleteWebhook; they stop answering)",
                  permissions=["change"])
    def disable_bots(self, request, queryset):
        for bot in queryset:
            bot_set_status(bot=bot, active=False)
        messages.success(request, f"Disabled {queryset.count()} bot(s).")

    @admin.action(description="Enable selected bots (register the webhook again)", permissions=["change"])
    def enable_bots(self, request, queryset):
        for bot in queryset:
            try:
                bot_set_status(bot=bot, active=True)
            except ServiceError as exc:
                messages.error(request, f"{bot}: {exc.message} ({exc.code})")


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


class StuckFilter(admin.SimpleListFilter):
    title = "needs attention"
    parameter_name = "attention"

    def lookups(self, request, model_admin):
        return (("stuck", "Stuck (pending or processing too long)"), ("failed", "Failed"))

    def queryset(self, request, queryset):
        from django.conf import settings

        from bots.inbox import claim_stale_seconds

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
        from bots.inbox import updates_retry

        count = updates_retry(update_pks=list(queryset.values_list("pk", flat=True)))
        messages.success(request, f"{count} update(s) queued again.")


def get_bot_for_admin(request, bot_id: int) -> Bot:
    """The bot ``bot_id`` if the signed-in user may see it (for admin views such as the playground).

    Raises:
        Http404: missing, or another company's bot (they look the same).
    """
    return get_object_or_404(scope_to_user(request, Bot.objects.select_related("company")), pk=bot_id)
