"""API v1 ``/bots``: connect, change, delete a bot, its webhook status, and ask it a question."""
from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response

from bots.answers import bot_ask
from bots.lifecycle import bot_connect, bot_delete, bot_update
from bots.models import Bot, Conversation, Message
from bots.telegram_setup import bot_webhook_info
from saas_bot.api import serializers as s
from saas_bot.api.exceptions import error_body
from saas_bot.api.idempotency import idempotent
from saas_bot.api.views.base import IDEMPOTENCY_PARAM, READ_ERRORS, WRITE_ERRORS, CompanyViewSet, schema_error


@extend_schema_view(
    list=extend_schema(summary="List bots", tags=["bots"], responses={200: s.BotSerializer(many=True),
                                                                     **READ_ERRORS}),
    retrieve=extend_schema(summary="Read a bot", tags=["bots"], responses={200: s.BotSerializer, **READ_ERRORS}),
    destroy=extend_schema(summary="Delete a bot (its webhook is removed first)", tags=["bots"],
                          responses={204: None, **READ_ERRORS}),
)
class BotViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, CompanyViewSet):
    """The company's Telegram bots. Tokens are checked with getMe, stored encrypted and never returned."""

    serializer_class = s.BotSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Bot.objects.none()
        return Bot.objects.for_company(self.company).prefetch_related("collections").order_by("id")

    @extend_schema(summary="Connect a bot by its @BotFather token", tags=["bots"], request=s.BotCreateSerializer,
                   parameters=[IDEMPOTENCY_PARAM],
                   responses={201: s.BotSerializer, **WRITE_ERRORS,
                              402: schema_error("no_subscription."),
                              429: schema_error("quota_bots: the plan's bot limit, or throttled."),
                              503: schema_error("telegram_unavailable: Telegram could not be reached; retry.")},
                   examples=[OpenApiExample("connect", request_only=True,
                                            value={"token": "123456789:AAE...from-BotFather", "name": "Support"})])
    @idempotent
    def create(self, request, *args, **kwargs):
        serializer = s.BotCreateSerializer(data=request.data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        token = data.pop("token")
        collections = data.pop("collections", None)
        bot = bot_connect(company=self.company, token=token, name=data.get("name", ""))
        if data or collections is not None:
            bot = bot_update(bot=bot, changes=data, collections=collections)
        return Response(s.BotSerializer(bot).data, status=status.HTTP_201_CREATED)

    @extend_schema(summary="Change a bot's settings, status or token", tags=["bots"],
                   request=s.BotSettingsSerializer,
                   responses={200: s.BotSerializer, **WRITE_ERRORS,
                              503: schema_error("telegram_unavailable.")},
                   examples=[OpenApiExample("rename and disable", request_only=True,
                                            value={"name": "Helpdesk", "status": "disabled"})])
    def partial_update(self, request, *args, **kwargs):
        bot = self.get_object()
        serializer = s.BotSettingsSerializer(bot, data=request.data, partial=True,
                                             context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        bot = bot_update(bot=bot, token=data.pop("token", None), status=data.pop("status", None),
                         collections=data.pop("collections", None), changes=data)
        return Response(s.BotSerializer(bot).data)

    def destroy(self, request, *args, **kwargs):
        bot_delete(bot=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(summary="Telegram's webhook status for this bot (getWebhookInfo)", tags=["bots"],
                   responses={200: s.WebhookInfoSerializer, **READ_ERRORS,
                              400: schema_error("bot_token_invalid: Telegram revoked the token."),
                              503: schema_error("telegram_unavailable.")})
    @action(detail=True, methods=["get"])
    def webhook(self, request, pk=None):
        info = bot_webhook_info(bot=self.get_object())
        return Response(s.WebhookInfoSerializer(info).data)

    @extend_schema(
        summary="Ask the bot a question (metered and limited like a Telegram message)", tags=["ask"],
        request=s.AskRequestSerializer, parameters=[IDEMPOTENCY_PARAM],
        responses={200: s.AskResponseSerializer, **WRITE_ERRORS,
                   400: schema_error("question_empty / question_too_long / validation_failed."),
                   402: schema_error("no_subscription: the company has no live subscription (nothing counted)."),
                   404: schema_error("not_found / conversation_not_found."),
                   429: schema_error("quota_messages: a plan or bot limit is reached (nothing counted; detail has the "
                                     "limit message and message_id), or throttled (Retry-After)."),
                   503: schema_error("The chat model or embeddings are unavailable; retry with the same "
                                     "Idempotency-Key.")},
        examples=[OpenApiExample("question", request_only=True, value={"question": "How do I reset my password?"}),
                  OpenApiExample("answer", response_only=True, status_codes=["200"], value={
                      "message_id": 42, "conversation_id": 7, "status": "answered",
                      "answer": "Open Settings, then Security, and choose Reset password.",
                      "sources": [{"title": "Account help", "section": "Passwords"}],
                      "usage": {"prompt_tokens": 412, "completion_tokens": 38, "total_tokens": 450},
                      "model": "gpt-4o-mini", "latency_ms": 950})])
    @action(detail=True, methods=["post"])
    @idempotent
    def ask(self, request, pk=None):
        bot = self.get_object()
        serializer = s.AskRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        conversation = None
        conversation_id = serializer.validated_data.get("conversation_id")
        if conversation_id is not None:
            conversation = Conversation.objects.for_company(self.company).filter(id=conversation_id).first()
            if conversation is None:
                return Response(error_body("conversation_not_found", "Conversation not found."), status=404)
        key = getattr(request, "idempotency_key", None)
        result = bot_ask(
            bot=bot, question=serializer.validated_data["question"], channel=Conversation.Channel.API,
            conversation=conversation, idempotency_key=f"api:{self.company.id}:{key}" if key else None)
        message = result.message
        if message.status == Message.Status.LIMIT_REACHED:
            return Response(error_body("quota_messages", "A message limit of the plan or the bot is reached.",
                                       {"message_id": message.id, "limit_message": message.answer}), status=429)
        if message.status == Message.Status.NO_SUBSCRIPTION:
            return Response(error_body("no_subscription", "The company has no live subscription.",
                                       {"message_id": message.id}), status=402)
        return Response({
            "message_id": message.id, "conversation_id": message.conversation_id, "status": message.status,
            "answer": message.answer, "sources": message.sources,
            "usage": {"prompt_tokens": message.prompt_tokens, "completion_tokens": message.completion_tokens,
                      "total_tokens": message.prompt_tokens + message.completion_tokens},
            "model": message.model, "latency_ms": message.latency_ms})
