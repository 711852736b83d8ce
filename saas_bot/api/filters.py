"""django-filter filter sets of the list endpoints (query parameters documented in the schema)."""
from __future__ import annotations

import datetime as dt

import django_filters as filters
from django import forms

from billing.models import UsageEvent
from bots.models import Conversation, Message
from rag.models import Document, SyncRun

ID_MAX = 2**63 - 1


class IdField(forms.IntegerField):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", ID_MAX)
        super().__init__(*args, **kwargs)


class IdFilter(filters.NumberFilter):
    """An integer id (not a decimal, within bigint)."""

    field_class = IdField


class UtcDateTimeField(filters.fields.IsoDateTimeField):
    """ISO 8601 date-time, turned into UTC. Offsets beyond +/-14:00 (none exists: UTC-12 to UTC+14) are
    refused with 400 instead of reaching PostgreSQL, which rejects them."""

    def clean(self, value):
        value = super().clean(value)
        if value is None:
            return None
        offset = value.utcoffset()
        if offset is not None and abs(offset) > dt.timedelta(hours=14):
            raise forms.ValidationError("The UTC offset must be within -14:00 and +14:00.")
        try:
            return value.astimezone(dt.timezone.utc)
        except OverflowError:
            raise forms.ValidationError("Date-time out of range.") from None


class UtcDateTimeFilter(filters.IsoDateTimeFilter):
    field_class = UtcDateTimeField


class DocumentFilter(filters.FilterSet):
    status = filters.ChoiceFilter(choices=Document.Status.choices)
    collection = IdFilter(field_name="collection_id", help_text="Collection id.")
    created_after = UtcDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = UtcDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Document
        fields = ["status", "collection", "created_after", "created_before"]


class ConversationFilter(filters.FilterSet):
    bot = IdFilter(field_name="bot_id")
    channel = filters.ChoiceFilter(choices=Conversation.Channel.choices)
    started_after = UtcDateTimeFilter(field_name="started_at", lookup_expr="gte")
    started_before = UtcDateTimeFilter(field_name="started_at", lookup_expr="lt")

    class Meta:
        model = Conversation
        fields = ["bot", "channel", "started_after", "started_before"]


class MessageFilter(filters.FilterSet):
    bot = IdFilter(field_name="bot_id")
    conversation = IdFilter(field_name="conversation_id")
    channel = filters.ChoiceFilter(field_name="conversation__channel", choices=Conversation.Channel.choices)
    status = filters.ChoiceFilter(choices=Message.Status.choices)
    feedback = filters.ChoiceFilter(choices=[(1, "1"), (-1, "-1")], help_text="1 (thumbs up) or -1 (down).")
    created_after = UtcDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = UtcDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Message
        fields = ["bot", "conversation", "channel", "status", "feedback", "created_after", "created_before"]


class UsageEventFilter(filters.FilterSet):
    kind = filters.ChoiceFilter(choices=UsageEvent.Kind.choices)
    bot = IdFilter(field_name="bot_id")
    channel = filters.CharFilter(max_length=20)
    occurred_after = UtcDateTimeFilter(field_name="occurred_at", lookup_expr="gte")
    occurred_before = UtcDateTimeFilter(field_name="occurred_at", lookup_expr="lt")

    class Meta:
        model = UsageEvent
        fields = ["kind", "bot", "channel", "occurred_after", "occurred_before"]


class SyncRunFilter(filters.FilterSet):
    source = IdFilter(field_name="source_id", help_text="Source id.")
    status = filters.ChoiceFilter(choices=SyncRun.Status.choices)

    class Meta:
        model = SyncRun
        fields = ["source", "status"]
