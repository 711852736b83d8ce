"""Response shapes of ``/conversations`` and ``/messages``."""
from __future__ import annotations

from rest_framework import serializers

from bots.models import Conversation, Message


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
