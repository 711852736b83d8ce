"""API v1 ``/conversations`` and ``/messages``: what the company's bots were asked and answered (read only)."""
from __future__ import annotations

from django.db.models import Count
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins

from bots.models import Conversation, Message
from saas_bot.api import serializers as s
from saas_bot.api.filters import ConversationFilter, MessageFilter
from saas_bot.api.views.base import READ_ERRORS, CompanyViewSet


@extend_schema_view(
    list=extend_schema(summary="List conversations", tags=["conversations"],
                       responses={200: s.ConversationSerializer(many=True), **READ_ERRORS}),
    retrieve=extend_schema(summary="Read a conversation", tags=["conversations"],
                           responses={200: s.ConversationSerializer, **READ_ERRORS}),
)
class ConversationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, CompanyViewSet):
    """Conversations of the company's bots (Telegram, API, CLI, playground), newest first."""

    serializer_class = s.ConversationSerializer
    filterset_class = ConversationFilter

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Conversation.objects.none()
        return (Conversation.objects.for_company(self.company).annotate(message_count=Count("messages"))
                .order_by("-started_at", "-id"))


@extend_schema_view(
    list=extend_schema(summary="List messages (question, answer, sources, tokens)", tags=["conversations"],
                       responses={200: s.MessageSerializer(many=True), **READ_ERRORS}),
    retrieve=extend_schema(summary="Read a message", tags=["conversations"],
                           responses={200: s.MessageSerializer, **READ_ERRORS}),
)
class MessageViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, CompanyViewSet):
    """Questions and answers of the company's bots, newest first."""

    serializer_class = s.MessageSerializer
    filterset_class = MessageFilter

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Message.objects.none()
        return Message.objects.for_company(self.company).order_by("-created_at", "-id")
