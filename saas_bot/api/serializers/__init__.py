"""Request and response shapes of API v1, one module per resource; writes go through the services (bots,
rag, billing). ``common``: the error body, strict request types, the collection id field; ``bots`` (with
ask), ``documents`` (with collections), ``sources`` (with sync runs), ``conversations`` (with messages),
``usage`` (with the subscription). Every serializer is importable from here (``serializers as s`` in views).
"""
from saas_bot.api.serializers.bots import (
    BOT_SETTINGS, AskRequestSerializer, AskResponseSerializer, BotCreateSerializer, BotSerializer,
    BotSettingsSerializer, SourceSerializer, UsageTokensSerializer, WebhookInfoSerializer,
)
from saas_bot.api.serializers.common import CollectionField, ErrorDetailSerializer, ErrorSerializer, StrictTypes
from saas_bot.api.serializers.conversations import ConversationSerializer, MessageSerializer
from saas_bot.api.serializers.documents import (
    CollectionSerializer, DocumentCreateResponseSerializer, DocumentCreateSerializer, DocumentOutcomeSerializer,
    DocumentSerializer, DocumentUploadSerializer,
)
from saas_bot.api.serializers.sources import (
    KnowledgeSourceSerializer, KnowledgeSourceWriteSerializer, SyncRunFailureSerializer, SyncRunSerializer,
)
from saas_bot.api.serializers.usage import (
    DAY_MAX, DAY_MIN, LimitUsageSerializer, PlanSerializer, SubscriptionSerializer, UsageAlertSerializer,
    UsageCurrentSerializer, UsageDailyQuerySerializer, UsageDaySerializer,
    UsageEventSerializer,
)

__all__ = ["AskRequestSerializer", "AskResponseSerializer", "BOT_SETTINGS", "BotCreateSerializer", "BotSerializer",
           "BotSettingsSerializer", "CollectionField", "CollectionSerializer", "ConversationSerializer", "DAY_MAX",
           "DAY_MIN", "DocumentCreateResponseSerializer", "DocumentCreateSerializer", "DocumentOutcomeSerializer",
           "DocumentSerializer", "DocumentUploadSerializer", "ErrorDetailSerializer", "ErrorSerializer",
           "KnowledgeSourceSerializer", "KnowledgeSourceWriteSerializer", "LimitUsageSerializer", "MessageSerializer",
           "PlanSerializer", "SourceSerializer", "StrictTypes", "SubscriptionSerializer", "SyncRunFailureSerializer",
           "SyncRunSerializer", "UsageAlertSerializer", "UsageCurrentSerializer", "UsageDailyQuerySerializer",
           "UsageDaySerializer", "UsageEventSerializer", "UsageTokensSerializer", "WebhookInfoSerializer"]
