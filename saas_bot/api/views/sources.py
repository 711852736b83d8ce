"""API v1 ``/sources`` (websites, sitemaps and URLs kept in sync) and their ``/sync-runs``."""
from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response

from rag import sources as source_services
from rag.models import Source, SyncRun
from saas_bot.api import serializers as s
from saas_bot.api.filters import SyncRunFilter
from saas_bot.api.idempotency import idempotent
from saas_bot.api.parsers import SafeJSONParser
from saas_bot.api.views.base import IDEMPOTENCY_PARAM, READ_ERRORS, WRITE_ERRORS, CompanyViewSet, schema_error


SOURCE_ERRORS = {**WRITE_ERRORS,
                 400: schema_error("document_url_invalid / source_kind_invalid / source_schedule_invalid / "
                                   "source_max_pages_invalid / source_max_depth_invalid / "
                                   "source_alert_percent_invalid / source_name_missing / validation_failed.")}


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
