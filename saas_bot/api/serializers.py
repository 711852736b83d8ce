"""Request and response shapes of API v1. Writes go through the services (bots, rag, billing)."""
from __future__ import annotations

import datetime as dt
import re

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from billing.models import UsageEvent
from bots.models import Bot, Conversation, Message
from bots.answers import QUESTION_MAX_CHARS
from rag.models import Collection, Document, Source, SyncRun


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable, machine-readable (docs/api.md lists them).")
    message = serializers.CharField(help_text="For people; may change.")
    detail = serializers.JSONField(allow_null=True, help_text="Field errors, per-file outcomes, or null.")


class ErrorSerializer(serializers.Serializer):
    """Every error: ``{"error": {"code", "message", "detail"}}``."""

    error = ErrorDetailSerializer()


class StrictTypes:
    """Request serializers: a JSON value of the wrong type is a 400 naming the field, not coerced.

    DRF turns ``{"question": 42}`` into "42" and ``{"conversation_id": true}`` into 1; a client that sends
    a number for a text field has a bug it should hear about. Text fields take strings; integer and id
    fields take integers (or strings of digits: query parameters and multipart forms only carry strings);
    booleans are never numbers. ``null`` stays with the field's own ``allow_null``.
    """

    def to_internal_value(self, data):
        from collections.abc import Mapping

        errors = {}
        if isinstance(data, Mapping):
            for name, field in self.fields.items():
                if field.read_only or name not in data:
                    continue
                value = data[name]
                problem = _type_problem(field, value)
                if problem:
                    errors[name] = [problem]
        if errors:
            raise serializers.ValidationError(errors)
        return super().to_internal_value(data)


def _is_integer_like(value) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool)) or (
        isinstance(value, str) and re.fullmatch(r"\s*-?[0-9]+\s*", value) is not None)


def _type_problem(field, value) -> str | None:
    if value is None:
        return None
    if isinstance(field, serializers.CharField) and not isinstance(value, str):
        return "Must be a string."
    if isinstance(field, (serializers.IntegerField, serializers.PrimaryKeyRelatedField)) \
            and not _is_integer_like(value):
        return "Must be an integer."
    if isinstance(field, serializers.ManyRelatedField):
        if not isinstance(value, list) or not all(_is_integer_like(item) for item in value):
            return "Must be a list of integer ids."
    if isinstance(field, serializers.ChoiceField) and not isinstance(value, str):
        return "Must be a string."
    return None


# --- bots ---------------------------------------------------------------------------------
BOT_SETTINGS = ("name", "persona", "welcome_text", "help_text", "language", "limit_message",
                "max_messages_per_period", "edited_messages", "conversation_idle_minutes")


@extend_schema_field(OpenApiTypes.INT)
class CollectionField(serializers.PrimaryKeyRelatedField):
    """A collection id of the request's company (another company's id is "does not exist")."""

    def get_queryset(self):
        company = self.context.get("company")
        return Collection.objects.for_company(company) if company is not None else Collection.objects.none()


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


# --- documents ----------------------------------------------------------------------------
class CollectionSerializer(serializers.ModelSerializer):
    document_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Collection
        fields = ("id", "name", "description", "document_count", "created_at")
        read_only_fields = fields



class DocumentSerializer(serializers.ModelSerializer):
    source_url = serializers.CharField(read_only=True, help_text="The page it was fetched from; empty = none.")

    class Meta:
        model = Document
        fields = ("id", "title", "file_name", "source_url", "collection", "checksum", "size_bytes", "status",
                  "progress", "error", "chunk_count", "token_count", "created_at", "indexed_at")
        read_only_fields = fields


class DocumentUploadSerializer(StrictTypes, serializers.Serializer):
    """multipart/form-data: one or more ``files``, an optional ``collection`` id."""

    files = serializers.ListField(child=serializers.FileField(allow_empty_file=True), min_length=1)
    collection = CollectionField(required=False, allow_null=True)

    def validate_files(self, files):
        """At most ``API_UPLOAD_MAX_FILES`` files per request (nothing is stored when there are more)."""
        from django.conf import settings

        if len(files) > settings.API_UPLOAD_MAX_FILES:
            raise serializers.ValidationError(
                f"At most {settings.API_UPLOAD_MAX_FILES} files per request; {len(files)} were sent.")
        return files


class DocumentCreateSerializer(StrictTypes, serializers.Serializer):
    """JSON: ``{"url"}`` (fetched) or ``{"title", "text"}`` (pasted), with an optional ``collection`` id."""

    url = serializers.CharField(required=False, max_length=2000)
    title = serializers.CharField(required=False, allow_blank=True, max_length=300)
    text = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    collection = CollectionField(required=False, allow_null=True)

    def validate(self, attrs):
        if "url" in attrs and "text" in attrs:
            raise serializers.ValidationError("Give either url or title and text, not both.")
        if "url" not in attrs and "text" not in attrs:
            raise serializers.ValidationError("Give url, or title and text (or upload files as multipart).")
        return attrs


class DocumentOutcomeSerializer(serializers.Serializer):
    """What happened to one file (or URL, or text) of a create request."""

    name = serializers.CharField(help_text="The file name, URL or title.")
    outcome = serializers.ChoiceField(choices=["created", "duplicate", "failed"],
                                      help_text="duplicate: the same content is already stored (that document).")
    document = DocumentSerializer(allow_null=True)
    error = ErrorDetailSerializer(allow_null=True)


class DocumentCreateResponseSerializer(serializers.Serializer):
    results = DocumentOutcomeSerializer(many=True)


# --- conversations and messages --------------------------------------------------------------
class ConversationSerializer(serializers.ModelSerializer):
    message_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Conversation
        fields = ("id", "bot", "channel", "thread_id", "started_at", "last_message_at", "ended_at",
                  "message_count")
        read_only_fields = fields


class MessageSerializer(serializers.ModelSerializer):
    class Meta:
        model = Message
        fields = ("id", "bot", "conversation", "end_user_id", "question", "answer", "sources", "status",
                  "prompt_tokens", "completion_tokens", "model", "latency_ms", "feedback", "created_at",
                  "delivered_at")
        read_only_fields = fields


# --- usage and subscription ------------------------------------------------------------------
class LimitUsageSerializer(serializers.Serializer):
    limit = serializers.CharField()
    used = serializers.IntegerField()
    maximum = serializers.IntegerField(allow_null=True, help_text="null = unlimited.")
    percent = serializers.FloatField(allow_null=True)


class UsageAlertSerializer(serializers.Serializer):
    limit = serializers.CharField()
    threshold = serializers.IntegerField()


class UsageCurrentSerializer(serializers.Serializer):
    plan = serializers.CharField()
    status = serializers.CharField()
    period_start = serializers.DateTimeField()
    period_end = serializers.DateTimeField()
    limits = LimitUsageSerializer(many=True)
    cost = serializers.DecimalField(max_digits=14, decimal_places=6)
    credits = serializers.IntegerField()
    alerts = UsageAlertSerializer(many=True)


DAY_MIN, DAY_MAX = dt.date(2000, 1, 1), dt.date(2100, 12, 31)


class UsageDailyQuerySerializer(StrictTypes, serializers.Serializer):
    start = serializers.DateField(required=False, help_text="First UTC day (default: the period's first day).")
    end = serializers.DateField(required=False, help_text="Last UTC day, inclusive (default: today).")
    bot = serializers.IntegerField(required=False, min_value=1, max_value=2**63 - 1)

    def validate(self, attrs):
        for name in ("start", "end"):
            if name in attrs and not (DAY_MIN <= attrs[name] <= DAY_MAX):
                raise serializers.ValidationError({name: f"Between {DAY_MIN} and {DAY_MAX}."})
        if attrs.get("start") and attrs.get("end"):
            if attrs["start"] > attrs["end"]:
                raise serializers.ValidationError("start must not be after end.")
            if (attrs["end"] - attrs["start"]).days > 366:
                raise serializers.ValidationError("At most 367 days at once.")
        return attrs


class UsageDaySerializer(serializers.Serializer):
    day = serializers.DateField()
    messages = serializers.IntegerField()
    tokens = serializers.IntegerField()
    cost = serializers.DecimalField(max_digits=14, decimal_places=6)


class UsageEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = UsageEvent
        fields = ("id", "kind", "quantity", "prompt_tokens", "completion_tokens", "model", "cost", "bot",
                  "end_user_id", "channel", "period_start", "occurred_at")
        read_only_fields = fields


class PlanSerializer(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()
    price = serializers.DecimalField(max_digits=10, decimal_places=2)
    currency = serializers.CharField()


class SubscriptionSerializer(serializers.Serializer):
    plan = PlanSerializer()
    status = serializers.CharField()
    limits = serializers.DictField(child=serializers.IntegerField(allow_null=True),
                                   help_text="Limit name -> maximum for the current period (null = unlimited).")
    current_period_start = serializers.DateTimeField()
    current_period_end = serializers.DateTimeField()
    trial_ends_at = serializers.DateTimeField(allow_null=True)
    cancel_at_period_end = serializers.BooleanField()
    pending_plan = serializers.CharField(allow_null=True, source="pending_plan.code", default=None)


# --- knowledge-base sources (docs/knowledge-base.md) ------------------------------------------
class SyncRunFailureSerializer(serializers.Serializer):
    url = serializers.CharField()
    code = serializers.CharField()
    message = serializers.CharField()


class SyncRunSerializer(serializers.ModelSerializer):
    """One sync run: progress (pages_done of pages_total), the summary, failed pages, bytes received."""

    failures = SyncRunFailureSerializer(many=True, read_only=True)

    class Meta:
        model = SyncRun
        fields = ("id", "source", "status", "trigger", "pages_done", "pages_total", "added", "changed", "removed",
                  "failed", "unchanged", "bytes_received", "failures", "error", "alerted", "created_at",
                  "started_at", "finished_at")
        read_only_fields = fields


class KnowledgeSourceSerializer(serializers.ModelSerializer):
    """A website, sitemap or single URL kept in sync, with its latest run (null before the first)."""

    last_run = serializers.SerializerMethodField()

    class Meta:
        model = Source
        fields = ("id", "name", "kind", "url", "include_patterns", "exclude_patterns", "max_pages", "max_depth",
                  "schedule", "collection", "change_alert_percent", "last_synced_at", "created_at", "last_run")
        read_only_fields = fields

    @extend_schema_field(SyncRunSerializer(allow_null=True))
    def get_last_run(self, source):
        run = source.runs.order_by("-created_at", "-id").first()
        return SyncRunSerializer(run).data if run is not None else None


class KnowledgeSourceWriteSerializer(StrictTypes, serializers.ModelSerializer):
    """The settings of a source (POST: name and url required; PATCH: any of them)."""

    collection = CollectionField(required=False, allow_null=True)

    class Meta:
        model = Source
        fields = ("name", "kind", "url", "include_patterns", "exclude_patterns", "max_pages", "max_depth",
                  "schedule", "collection", "change_alert_percent")
