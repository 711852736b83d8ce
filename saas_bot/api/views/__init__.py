"""API v1 endpoints, one module per resource (``urls.py`` registers them):

- ``base``: the company viewset base (API key or session, the request's company, per-key throttling, the
  body-size guard), pagination, the schema's error responses;
- ``bots``: bots and ask; ``documents``: documents and collections; ``sources``: sources and sync runs;
  ``conversations``: conversations and messages; ``usage``: usage, ledger events, the subscription;
  ``versions``: knowledge-base versions and golden questions.
"""
from saas_bot.api.views.base import CompanyViewSet, Pagination
from saas_bot.api.views.bots import BotViewSet
from saas_bot.api.views.conversations import ConversationViewSet, MessageViewSet
from saas_bot.api.views.documents import CollectionViewSet, DocumentViewSet
from saas_bot.api.views.sources import SourceViewSet, SyncRunViewSet
from saas_bot.api.views.usage import SubscriptionViewSet, UsageEventViewSet, UsageViewSet
from saas_bot.api.views.versions import GoldenQuestionViewSet, KnowledgeBaseViewSet, VersionViewSet

__all__ = ["BotViewSet", "CollectionViewSet", "CompanyViewSet", "ConversationViewSet", "DocumentViewSet",
           "MessageViewSet", "Pagination", "SourceViewSet", "SubscriptionViewSet", "SyncRunViewSet",
           "UsageEventViewSet", "UsageViewSet", "GoldenQuestionViewSet", "KnowledgeBaseViewSet", "VersionViewSet"]
