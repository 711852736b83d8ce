"""API v1 endpoints. Each parses input, calls one service or selector with the request's company, renders.

Every queryset starts from ``.for_company(self.company)``: another company's object is a 404 like a
missing one. Business rules live in bots/rag/billing services (docs/api.md).
"""
from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db.models import Count
from django.utils import timezone
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.authentication import SessionAuthentication
from rest_framework.decorators import action
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from billing import selectors as usage_selectors
from billing.models import UsageEvent
from billing.services import subscription_get_live
from bots.answers import ask
from bots.lifecycle import bot_connect, bot_delete, bot_update
from bots.telegram_setup import bot_webhook_info
from bots.models import Bot, Conversation, Message
from rag import services as document_services
from rag import sources as source_services
from rag.models import Collection, Document, Source, SyncRun
from saas_bot.api import serializers as s
from saas_bot.api.authentication import ApiKeyAuthentication, ApiKeyRateThrottle, CompanyMember, request_company
from saas_bot.api.exceptions import RequestTooLarge, error_body
from saas_bot.api.filters import ConversationFilter, DocumentFilter, MessageFilter, SyncRunFilter, UsageEventFilter
from saas_bot.api.idempotency import HEADER as IDEMPOTENCY_HEADER
from saas_bot.api.idempotency import idempotent
from saas_bot.api.parsers import SafeJSONParser
from saas_bot.errors import ServiceError

ID_REGEX = r"[0-9]{1,18}"  # fits a bigint: longer ids cannot exist and never reach the database


def _error(description: str) -> OpenApiResponse:
    """An error response in the schema; its example carries the first code the description names."""
    code = description.replace(":", " ").replace(",", " ").split()[0].rstrip(".")
    example = OpenApiExample(code, value={"error": {"code": code, "message": description.split(": ", 1)[-1],
                                                    "detail": None}}, response_only=True)
    return OpenApiResponse(s.ErrorSerializer, description=description, examples=[example])


READ_ERRORS = {
    400: _error("validation_failed: a query parameter is not valid."),
    401: _error("not_authenticated / authentication_failed: no key, or an unknown, revoked or expired key."),
    403: _error("permission_denied: no company (platform staff without membership) or a viewer writing."),
    404: _error("not_found: no such object in your company (another company's objects look the same)."),
    429: _error("throttled: too many requests for this key; see Retry-After."),
}
WRITE_ERRORS = {
    **READ_ERRORS,
    400: _error("validation_failed, or the service's code (e.g. bot_token_invalid)."),
    409: _error("idempotency_key_in_progress: the first request with this Idempotency-Key still runs."),
    415: _error("unsupported_media_type."),
    422: _error("idempotency_key_reused: this Idempotency-Key was used for a different request."),
}
IDEMPOTENCY_PARAM = OpenApiParameter(
    IDEMPOTENCY_HEADER, OpenApiTypes.STR, OpenApiParameter.HEADER, required=False,
    description="Up to 255 characters. Same key and same request within 24 h: the first response is "
                "returned again (header Idempotent-Replayed: true) and nothing runs twice.")


class Pagination(PageNumberPagination):
    """``?page=N&page_size=M`` (default 50, at most 200): ``{"count", "next", "previous", "results"}``."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200


class CompanyViewSet(viewsets.GenericViewSet):
    """Base: API key or session authentication, the request's company, per-key throttling."""

    authentication_classes = [ApiKeyAuthentication, SessionAuthentication]
    permission_classes = [CompanyMember]
    throttle_classes = [ApiKeyRateThrottle]
    pagination_class = Pagination
    filter_backends = [DjangoFilterBackend]
    lookup_value_regex = ID_REGEX

    @property
    def company(self):
        if not hasattr(self, "_company"):
            self._company = request_company(self.request)
        return self._company

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "company": self.company}

    def max_body_bytes(self) -> int:
        """The largest request body this action accepts (bytes): Django's ``DATA_UPLOAD_MAX_MEMORY_SIZE``
        (2.5 MiB) unless a view allows more (uploads: ``API_UPLOAD_MAX_BYTES``)."""
        return settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 2_621_440

    def initial(self, request, *args, **kwargs):
        """Refuse a body declared larger than ``max_body_bytes()`` before authentication, the
        Idempotency-Key fingerprint or any parser reads it: 413 ``request_too_large``.

        The declared length bounds every read: Django reads a request body through a stream limited to
        ``Content-Length`` (a body without one, e.g. chunked, reads as empty), so nothing past the limit is
        ever read, with or without ``Idempotency-Key``.
        """
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = 0  # Django reads such a body as empty too
        limit = self.max_body_bytes()
        if declared > limit:
            raise RequestTooLarge(f"The request body is {declared} bytes; this endpoint accepts at most {limit}.")
        super().initial(request, *args, **kwargs)


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
                              402: _error("no_subscription."),
                              429: _error("quota_bots: the plan's bot limit, or throttled."),
                              503: _error("telegram_unavailable: Telegram could not be reached; retry.")},
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
                              503: _error("telegram_unavailable.")},
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
                              400: _error("bot_token_invalid: Telegram revoked the token."),
                              503: _error("telegram_unavailable.")})
    @action(detail=True, methods=["get"])
    def webhook(self, request, pk=None):
        info = bot_webhook_info(bot=self.get_object())
        return Response(s.WebhookInfoSerializer(info).data)

    @extend_schema(
        summary="Ask the bot a question (metered and limited like a Telegram message)", tags=["ask"],
        request=s.AskRequestSerializer, parameters=[IDEMPOTENCY_PARAM],
        responses={200: s.AskResponseSerializer, **WRITE_ERRORS,
                   400: _error("question_empty / question_too_long / validation_failed."),
                   402: _error("no_subscription: the company has no live subscription (nothing counted)."),
                   404: _error("not_found / conversation_not_found."),
                   429: _error("quota_messages: a plan or bot limit is reached (nothing counted; detail has the "
                               "limit message and message_id), or throttled (Retry-After)."),
                   503: _error("The chat model or embeddings are unavailable; retry with the same "
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
        result = ask(
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


@extend_schema_view(
    list=extend_schema(summary="List documents with status and progress", tags=["documents"],
                       responses={200: s.DocumentSerializer(many=True), **READ_ERRORS}),
    retrieve=extend_schema(summary="Read a document (poll status/progress until ready)", tags=["documents"],
                           responses={200: s.DocumentSerializer, **READ_ERRORS}),
    destroy=extend_schema(summary="Delete a document with its chunks and file", tags=["documents"],
                          responses={204: None, **READ_ERRORS}),
)
class DocumentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, CompanyViewSet):
    """The company's documents: upload (multipart, several files), from a URL or pasted text, re-index."""

    serializer_class = s.DocumentSerializer
    filterset_class = DocumentFilter
    parser_classes = [MultiPartParser, FormParser, SafeJSONParser]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Document.objects.none()
        return Document.objects.for_company(self.company).order_by("-created_at", "-id")

    @extend_schema(
        summary="Add documents: upload files (multipart), or give a URL or a title and text (JSON)",
        tags=["documents"], parameters=[IDEMPOTENCY_PARAM],
        request={"multipart/form-data": s.DocumentUploadSerializer, "application/json": s.DocumentCreateSerializer},
        responses={201: OpenApiResponse(s.DocumentCreateResponseSerializer,
                                        description="At least one document was added; each file's outcome."),
                   200: OpenApiResponse(s.DocumentCreateResponseSerializer,
                                        description="Nothing new: every file was already stored (duplicate)."),
                   **WRITE_ERRORS,
                   400: _error("document_unsupported_type / document_empty / document_url_invalid / "
                               "document_url_unreachable / validation_failed (every file failed: detail has "
                               "each outcome; nothing stored)."),
                   413: _error("document_too_large / request_too_large."),
                   429: _error("quota_documents / quota_storage, or throttled."),
                   402: _error("no_subscription.")},
        examples=[OpenApiExample("from text", request_only=True, media_type="application/json",
                                 value={"title": "Refunds", "text": "# Refunds\nRefunds take 5 days."}),
                  OpenApiExample("from a URL", request_only=True, media_type="application/json",
                                 value={"url": "https://example.com/help/refunds.html"})])
    @idempotent
    def create(self, request, *args, **kwargs):
        context = self.get_serializer_context()
        if request.content_type.startswith("application/json"):
            serializer = s.DocumentCreateSerializer(data=request.data, context=context)
            serializer.is_valid(raise_exception=True)
            data = serializer.validated_data
            if "url" in data:
                jobs = [(data["url"], lambda: document_services.document_add_url(
                    company=self.company, url=data["url"], title=data.get("title") or None,
                    collection=data.get("collection")))]
            else:
                jobs = [(data.get("title", ""), lambda: document_services.document_add_text(
                    company=self.company, title=data.get("title", ""), text=data["text"],
                    collection=data.get("collection")))]
        else:
            serializer = s.DocumentUploadSerializer(data={"files": request.FILES.getlist("files"),
                                                          **({"collection": request.data["collection"]}
                                                             if request.data.get("collection") else {})},
                                                    context=context)
            serializer.is_valid(raise_exception=True)
            data = serializer.validated_data
            jobs = [(upload.name, self._upload_job(upload, data.get("collection"))) for upload in data["files"]]
        results, first_error = [], None
        for name, job in jobs:
            try:
                document, created = job()
            except ServiceError as exc:
                first_error = first_error or exc
                results.append({"name": name, "outcome": "failed", "document": None,
                                "error": {"code": exc.code, "message": exc.message, "detail": exc.detail}})
                continue
            results.append({"name": name, "outcome": "created" if created else "duplicate",
                            "document": s.DocumentSerializer(document).data, "error": None})
        if first_error is not None and all(r["outcome"] == "failed" for r in results):
            from saas_bot.api.exceptions import STATUS_BY_CODE

            return Response(error_body(first_error.code, first_error.message, {"results": results}),
                            status=STATUS_BY_CODE.get(first_error.code, first_error.status))
        created_any = any(r["outcome"] == "created" for r in results)
        return Response({"results": results}, status=status.HTTP_201_CREATED if created_any else status.HTTP_200_OK)

    def max_body_bytes(self) -> int:
        """Uploads (``POST /documents``) may be up to ``API_UPLOAD_MAX_BYTES``."""
        return settings.API_UPLOAD_MAX_BYTES if self.action == "create" else super().max_body_bytes()

    def _upload_job(self, upload, collection):
        def run():
            data = upload.read()
            return document_services.document_add(company=self.company, file_name=upload.name or "document",
                                                  data=data, collection=collection)
        return run

    def destroy(self, request, *args, **kwargs):
        document_services.document_delete(company=self.company, document_id=self.get_object().id)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(summary="Re-index a document (status back to pending)", tags=["documents"], request=None,
                   parameters=[IDEMPOTENCY_PARAM],
                   responses={202: s.DocumentSerializer, **WRITE_ERRORS})
    @action(detail=True, methods=["post"])
    @idempotent
    def reindex(self, request, pk=None):
        document = document_services.document_reindex(company=self.company, document_id=self.get_object().id)
        return Response(s.DocumentSerializer(document).data, status=status.HTTP_202_ACCEPTED)


@extend_schema_view(
    list=extend_schema(summary="List collections (ids for a bot's collections and a document's collection)",
                       tags=["documents"], responses={200: s.CollectionSerializer(many=True), **READ_ERRORS}),
    retrieve=extend_schema(summary="Read a collection", tags=["documents"],
                           responses={200: s.CollectionSerializer, **READ_ERRORS}),
)
class CollectionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, CompanyViewSet):
    """The company's collections (created in the admin), by name."""

    serializer_class = s.CollectionSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Collection.objects.none()
        return (Collection.objects.for_company(self.company).annotate(document_count=Count("documents"))
                .order_by("name", "id"))


SOURCE_ERRORS = {**WRITE_ERRORS,
                 400: _error("document_url_invalid / source_kind_invalid / source_schedule_invalid / "
                             "source_max_pages_invalid / source_max_depth_invalid / source_alert_percent_invalid / "
                             "source_name_missing / validation_failed.")}


@extend_schema_view(
    list=extend_schema(summary="List sources (websites, sitemaps, single URLs kept in sync)", tags=["sources"],
                       responses={200: s.KnowledgeSourceSerializer(many=True), **READ_ERRORS}),
    retrieve=extend_schema(summary="Read a source with its latest run", tags=["sources"],
                           responses={200: s.KnowledgeSourceSerializer, **READ_ERRORS}),
    destroy=extend_schema(summary="Delete a source and the documents it added", tags=["sources"],
                          responses={204: None, **READ_ERRORS}),
)
class SourceViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, CompanyViewSet):
    """The company's knowledge-base sources (docs/knowledge-base.md); runs are under ``/sync-runs``."""

    serializer_class = s.KnowledgeSourceSerializer
    parser_classes = [SafeJSONParser]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Source.objects.none()
        return Source.objects.for_company(self.company).order_by("name", "id")

    @extend_schema(summary="Add a source (nothing is fetched until a sync run)", tags=["sources"],
                   request=s.KnowledgeSourceWriteSerializer, parameters=[IDEMPOTENCY_PARAM],
                   responses={201: s.KnowledgeSourceSerializer, **SOURCE_ERRORS},
                   examples=[OpenApiExample("website", request_only=True,
                                            value={"name": "Help centre", "kind": "website",
                                                   "url": "https://help.example.com/", "include_patterns": "/en/*",
                                                   "max_pages": 300, "max_depth": 3, "schedule": "daily"})])
    @idempotent
    def create(self, request, *args, **kwargs):
        serializer = s.KnowledgeSourceWriteSerializer(data=request.data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        source = source_services.source_create(company=self.company, **serializer.validated_data)
        return Response(s.KnowledgeSourceSerializer(source).data, status=status.HTTP_201_CREATED)

    @extend_schema(summary="Change a source's settings (the next run uses them)", tags=["sources"],
                   request=s.KnowledgeSourceWriteSerializer, responses={200: s.KnowledgeSourceSerializer,
                                                                         **SOURCE_ERRORS})
    def partial_update(self, request, *args, **kwargs):
        source = self.get_object()
        serializer = s.KnowledgeSourceWriteSerializer(source, data=request.data, partial=True,
                                                      context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        source = source_services.source_update(company=self.company, source_id=source.id,
                                               **serializer.validated_data)
        return Response(s.KnowledgeSourceSerializer(source).data)

    def destroy(self, request, *args, **kwargs):
        source_services.source_delete(company=self.company, source_id=self.get_object().id)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(summary="Start a sync run now (a run already queued or running is returned)", tags=["sources"],
                   request=None, parameters=[IDEMPOTENCY_PARAM],
                   responses={202: s.SyncRunSerializer, **WRITE_ERRORS})
    @action(detail=True, methods=["post"])
    @idempotent
    def sync(self, request, pk=None):
        run = source_services.source_sync_start(company=self.company, source_id=self.get_object().id)
        run.refresh_from_db()
        return Response(s.SyncRunSerializer(run).data, status=status.HTTP_202_ACCEPTED)


@extend_schema_view(
    list=extend_schema(summary="List sync runs, newest first (filter by source, status)", tags=["sources"],
                       responses={200: s.SyncRunSerializer(many=True), **READ_ERRORS}),
    retrieve=extend_schema(summary="Read a sync run: progress, summary, failed pages", tags=["sources"],
                           responses={200: s.SyncRunSerializer, **READ_ERRORS}),
)
class SyncRunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, CompanyViewSet):
    """What each sync run of the company's sources found: added, changed, removed, failed, unchanged."""

    serializer_class = s.SyncRunSerializer
    filterset_class = SyncRunFilter

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return SyncRun.objects.none()
        return SyncRun.objects.for_company(self.company).order_by("-created_at", "-id")


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


@extend_schema_view(list=extend_schema(summary="Usage events of the ledger (paginated)", tags=["usage"],
                                      responses={200: s.UsageEventSerializer(many=True), **READ_ERRORS}))
class UsageEventViewSet(mixins.ListModelMixin, CompanyViewSet):
    """The ledger's billable events of the company, newest first."""

    serializer_class = s.UsageEventSerializer
    filterset_class = UsageEventFilter

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return UsageEvent.objects.none()
        return UsageEvent.objects.for_company(self.company).order_by("-occurred_at", "-id")


class UsageViewSet(CompanyViewSet):
    """Usage of the current period against the plan's limits, and the daily series."""

    pagination_class = None
    filter_backends = []

    @extend_schema(summary="Current period against every limit", tags=["usage"],
                   responses={200: s.UsageCurrentSerializer, **READ_ERRORS, 402: _error("no_subscription.")})
    def current(self, request):
        return Response(s.UsageCurrentSerializer(usage_selectors.usage_current(company=self.company)).data)

    @extend_schema(summary="Messages, tokens and cost per UTC day", tags=["usage"],
                   parameters=[s.UsageDailyQuerySerializer], responses={200: s.UsageDaySerializer(many=True),
                                                                        **READ_ERRORS})
    def daily(self, request):
        query = s.UsageDailyQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        today = timezone.now().date()
        end = query.validated_data.get("end") or today
        start = query.validated_data.get("start")
        if start is None:
            try:
                start = subscription_get_live(company=self.company).current_period_start.date()
            except ServiceError:
                start = end - dt.timedelta(days=29)
            start = min(start, end)
        if (end - start).days > 366:
            start = end - dt.timedelta(days=366)
        rows = usage_selectors.usage_daily(company=self.company, start=start, end=end,
                                           bot_id=query.validated_data.get("bot"))
        return Response(s.UsageDaySerializer(rows, many=True).data)


class SubscriptionViewSet(CompanyViewSet):
    """The company's live subscription: plan, limits, period."""

    @extend_schema(summary="Current plan, limits and period", tags=["subscription"],
                   responses={200: s.SubscriptionSerializer, **READ_ERRORS, 402: _error("no_subscription.")})
    def current(self, request):
        subscription = subscription_get_live(company=self.company)
        return Response(s.SubscriptionSerializer(subscription).data)

