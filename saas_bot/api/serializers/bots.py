"""Request and response shapes of ``/bots`` and ``/bots/{id}/ask``."""
from __future__ import annotations

from rest_framework import serializers

from bots.answers import QUESTION_MAX_CHARS
from bots.models import Bot, Message
from saas_bot.api.serializers.common import CollectionField, StrictTypes


BOT_SETTINGS = ("name", "persona", "welcome_text", "help_text", "language", "limit_message",
                "max_messages_per_period", "edited_messages", "conversation_idle_minutes")


class BotSerializer(serializers.ModelSerializer):
    """A bot as the API shows it: never the token, only ``token_hint``."""

    collections = serializers.PrimaryKeyRelatedField(many=True, read_only=True,
                                                     help_text="Collection ids; empty = all documents.")
    webhook_url = serializers.CharField(read_only=True, help_text="Registered webhook URL; empty = none.")

    class Meta:
        model = Bot
        fields = ("id", "name", "username", "telegram_id", "token_hint", "status", *BOT_SETTINGS[1:],
                  "collections", "webhook_url", "last_error", "created_at")
        read_only_fields = fields


class BotSettingsSerializer(StrictTypes, serializers.ModelSerializer):
    """Settings a caller may change. ``status`` active/disabled enables or disables the bot; ``token``
    replaces the token (same Telegram bot, after @BotFather /revoke)."""

    collections = CollectionField(many=True, required=False)
    status = serializers.ChoiceField(choices=[Bot.Status.ACTIVE, Bot.Status.DISABLED], required=False)
    token = serializers.CharField(write_only=True, required=False, trim_whitespace=True, max_length=200,
                                  help_text="A new token of the same bot; checked with getMe, never returned.")

    class Meta:
        model = Bot
        fields = (*BOT_SETTINGS, "collections", "status", "token")
        extra_kwargs = {"name": {"required": False}}


class BotCreateSerializer(BotSettingsSerializer):
    """Connect a bot: its @BotFather token (checked with getMe, stored encrypted) and optional settings."""

    token = serializers.CharField(write_only=True, max_length=200, help_text="From @BotFather; never returned.")

    class Meta(BotSettingsSerializer.Meta):
        fields = (*BOT_SETTINGS, "collections", "token")


class WebhookInfoSerializer(serializers.Serializer):
    url = serializers.CharField(allow_blank=True)
    pending_update_count = serializers.IntegerField()
    last_error_message = serializers.CharField(allow_blank=True)
    last_error_date = serializers.DateTimeField(allow_null=True)
    max_connections = serializers.IntegerField(allow_null=True)
    allowed_updates = serializers.ListField(child=serializers.CharField())
    matches = serializers.BooleanField(help_text="The registered URL is the one this deployment expects.")


# --- ask ----------------------------------------------------------------------------------
class AskRequestSerializer(StrictTypes, serializers.Serializer):
    question = serializers.CharField(allow_blank=True, trim_whitespace=False,
                                     help_text=f"1-{QUESTION_MAX_CHARS} characters (after trimming).")
    conversation_id = serializers.IntegerField(required=False, allow_null=True, min_value=1,
                                               max_value=2**63 - 1,
                                               help_text="Continue this conversation of the bot (its memory).")


class UsageTokensSerializer(serializers.Serializer):
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    total_tokens = serializers.IntegerField()


class SourceSerializer(serializers.Serializer):
    """One cited source (rag.answering: title, section or page, and the passage's id)."""

    title = serializers.CharField(required=False)


class AskResponseSerializer(serializers.Serializer):
    message_id = serializers.IntegerField()
    conversation_id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=[Message.Status.ANSWERED, Message.Status.NOT_FOUND],
                                     help_text="answered, or not_found (nothing relevant in the documents).")
    answer = serializers.CharField(allow_blank=True)
    sources = serializers.ListField(child=serializers.DictField())
    usage = UsageTokensSerializer()
    model = serializers.CharField(allow_blank=True)
    latency_ms = serializers.IntegerField()
