"""Bots for company admins (this module); their conversations and end users (``bots.admin_conversations``)
and the Telegram inbox for platform staff (``bots.admin_inbox``), registered from here.

Every write goes through ``bots.lifecycle`` and ``bots.telegram_setup`` (connect, replace token, enable/disable,
delete, webhook), the services the API uses. Forms only validate (no write, no Telegram call in ``clean``);
saving calls the service, and its refusal is shown on the form again (``saas_bot.admin_save``) or as an admin
message for actions, never a 500.
"""
from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from bots.lifecycle import (
    BOT_SETTINGS_FIELDS, bot_connect, bot_delete, bot_set_status, bot_token_format_check, bot_update,
)
from bots.models import Bot
from bots.telegram_setup import bot_register_webhook, bot_webhook_info
from saas_bot.admin_save import RefusalShownAdmin, SaveRefused, with_save_refusal
from saas_bot.admin_site import reverse_or_none
from saas_bot.errors import ServiceError
from tenants.access import current_company, is_platform_staff
from tenants.admin_scoping import CompanyScopedAdmin, scope_to_user


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
        fields = ["name"]  # validated on the unsaved instance only: bot_connect creates the bot in save_form

    def __init__(self, *args, company=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.target_company = company
        if company is None:  # platform staff choose the company
            from tenants.models import Company

            self.fields["company_choice"] = forms.ModelChoiceField(Company.objects.all(), label="Company")

    def clean(self):
        """Validates only (no write, no Telegram call): the token's @BotFather shape and the company.
        ``BotAdmin.save_form`` connects through ``bots.lifecycle.bot_connect`` (the API's service); a refusal
        there (Telegram rejects the token, the plan's bot limit) is shown on this form (``SaveRefused``)."""
        cleaned = super().clean()
        token = cleaned.get("token")
        if token:
            try:
                cleaned["token"] = bot_token_format_check(token=token)
            except ServiceError as exc:
                self.add_error("token", f"{exc.message} ({exc.code})")
        return cleaned

    @property
    def company(self):
        """The company the bot is connected to: the user's, or the one platform staff chose."""
        return self.target_company or self.cleaned_data.get("company_choice")


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
        """Validates only (no write, no Telegram call): a new token's @BotFather shape. ``BotAdmin.save_model``
        makes the change through ``bots.lifecycle.bot_update`` (the API's service); Telegram's refusal of the
        token (another bot's, revoked) is shown on this form (``SaveRefused``)."""
        cleaned = super().clean()
        token = cleaned.get("new_token")
        if token:
            try:
                cleaned["new_token"] = bot_token_format_check(token=token)
            except ServiceError as exc:
                self.add_error("new_token", f"{exc.message} ({exc.code})")
        return cleaned


@admin.register(Bot)
class BotAdmin(RefusalShownAdmin, CompanyScopedAdmin):
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

            return with_save_refusal(request, Form)
        kwargs["form"] = BotChangeForm
        kwargs["fields"] = BotChangeForm.Meta.fields + ["new_token"]
        return with_save_refusal(request, super().get_form(request, obj, change=change, **kwargs))

    def get_exclude(self, request, obj=None):
        return ["company"] if obj is not None else []

    def get_fields(self, request, obj=None):
        return [f for fs in self.get_fieldsets(request, obj) for f in fs[1]["fields"]]

    def save_form(self, request, form, change):
        """Adding: connect through ``bots.lifecycle.bot_connect`` (getMe, encrypt, store, webhook after commit);
        its refusal is shown on the add form (``SaveRefused``)."""
        if change:
            return super().save_form(request, form, change)
        try:
            return bot_connect(company=form.company, token=form.cleaned_data["token"],
                               name=form.cleaned_data.get("name") or "")
        except ServiceError as exc:
            raise SaveRefused([f"{exc.message} ({exc.code})"]) from None

    def save_model(self, request, obj, form, change):
        if not change:
            messages.success(request, f"Connected {obj} (Telegram id {obj.telegram_id}). The token is stored "
                                      f"encrypted; only {obj.token_hint} is shown from now on.")
            return  # bot_connect stored it in save_form
        changes = {f: form.cleaned_data[f] for f in form.changed_data if f in BOT_SETTINGS_FIELDS}
        collections = list(form.cleaned_data["collections"]) if "collections" in form.changed_data else None
        token = form.cleaned_data.get("new_token") or None
        try:
            bot_update(bot=Bot.objects.get(pk=obj.pk), changes=changes, collections=collections, token=token)
        except ServiceError as exc:  # e.g. Telegram refuses the new token: shown on the form, nothing saved
            raise SaveRefused([f"{exc.message} ({exc.code})"]) from None
        if token:
            messages.success(request, f"Token replaced; {obj} is active again.")

    def save_related(self, request, form, formsets, change):
        pass  # the bot's collections are set by bot_update (change) or not at all (add)

    def delete_model(self, request, obj):
        bot_delete(bot=obj)  # deleteWebhook first

    def delete_queryset(self, request, queryset):
        for bot in queryset:
            bot_delete(bot=bot)

    def get_deleted_objects(self, objs, request):
        """The confirmation page's list of what goes with the bots (chats, conversations, messages).

        Django refuses a delete when the user lacks the delete right on any row it cascades to; a bot's
        conversations and messages are read-only in the admin (no one deletes them one by one), yet they go
        with their bot (``bot_delete``). Whoever may delete the bot (owners and admins of its company,
        ``has_delete_permission``, checked by Django before this) needs no right on them.
        """
        deleted, model_count, _perms_needed, protected = super().get_deleted_objects(objs, request)
        return deleted, model_count, set(), protected

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


def get_bot_for_admin(request, bot_id: int) -> Bot:
    """The bot ``bot_id`` if the signed-in user may see it (for admin views such as the playground).

    Raises:
        Http404: missing, or another company's bot (they look the same).
    """
    return get_object_or_404(scope_to_user(request, Bot.objects.select_related("company")), pk=bot_id)


from bots import admin_conversations, admin_inbox  # noqa: E402,F401  (registers their admins)
