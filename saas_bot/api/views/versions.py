"""API v1 ``/versions`` (knowledge-base versions) and ``/golden-questions`` (rag/versions.py; docs/api.md,
docs/knowledge-base.md).

Scoped like every endpoint: querysets start from ``.for_company(self.company)``; another company's
version or question is a 404 like a missing one.
"""
from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response

from rag import golden as golden_service, version_actions as version_services
from rag.knowledge_base import knowledge_base_get, knowledge_base_golden_threshold_set
from rag.models import GoldenQuestion, KnowledgeBaseVersion
from saas_bot.api.idempotency import idempotent
from saas_bot.api.parsers import SafeJSONParser
from saas_bot.api.serializers.versions import (GoldenQuestionSerializer, KnowledgeBaseSerializer,
                                              VersionCompareSerializer, VersionSerializer)
from saas_bot.api.views.base import (ID_REGEX, IDEMPOTENCY_PARAM, READ_ERRORS, WRITE_ERRORS, CompanyViewSet,
                                     schema_error)
from saas_bot.errors import ValidationFailed
from saas_bot.ids import parse_id

VERSION_ERRORS = {
    **WRITE_ERRORS,
    400: schema_error("version_not_held, version_not_restorable, version_not_built or validation_failed."),
}
GOLDEN_ERRORS = {**WRITE_ERRORS, 400: schema_error("golden_question_invalid, or validation_failed.")}


@extend_schema_view(
    list=extend_schema(summary="List knowledge-base versions, newest first", tags=["versions"],
                       responses={200: VersionSerializer(many=True), **READ_ERRORS}),
    retrieve=extend_schema(summary="Read a version: changes, status, golden results", tags=["versions"],
                           responses={200: VersionSerializer, **READ_ERRORS}),
)
class VersionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, CompanyViewSet):
    """The company's knowledge-base versions (docs/knowledge-base.md "Versions")."""

    serializer_class = VersionSerializer
    parser_classes = [SafeJSONParser]
    lookup_value_regex = ID_REGEX

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return KnowledgeBaseVersion.objects.none()
        return KnowledgeBaseVersion.objects.for_company(self.company).order_by("-number")

    def _act(self, service):
        version = service(company=self.company, version_id=self.get_object().id)
        version.refresh_from_db()
        return Response(VersionSerializer(version).data)

    @extend_schema(summary="Make an earlier version live again at once", tags=["versions"], request=None,
                   parameters=[IDEMPOTENCY_PARAM], responses={200: VersionSerializer, **VERSION_ERRORS})
    @action(detail=True, methods=["post"])
    @idempotent
    def rollback(self, request, pk=None):
        return self._act(version_services.version_rollback)

    @extend_schema(summary="Make a held version live without the golden check", tags=["versions"], request=None,
                   parameters=[IDEMPOTENCY_PARAM], responses={200: VersionSerializer, **VERSION_ERRORS})
    @action(detail=True, methods=["post"])
    @idempotent
    def force(self, request, pk=None):
        return self._act(version_services.version_force)

    @extend_schema(summary="Discard a held version (it never goes live)", tags=["versions"], request=None,
                   parameters=[IDEMPOTENCY_PARAM], responses={200: VersionSerializer, **VERSION_ERRORS})
    @action(detail=True, methods=["post"])
    @idempotent
    def discard(self, request, pk=None):
        return self._act(version_services.version_discard)

    @extend_schema(summary="Check a held version against the golden questions again", tags=["versions"],
                   request=None, parameters=[IDEMPOTENCY_PARAM],
                   responses={200: VersionSerializer, **VERSION_ERRORS})
    @action(detail=True, methods=["post"])
    @idempotent
    def recheck(self, request, pk=None):
        return self._act(version_services.version_recheck)

    @extend_schema(summary="Compare with another version: documents added, changed, removed", tags=["versions"],
                   parameters=[OpenApiParameter("to", OpenApiTypes.INT, OpenApiParameter.QUERY, required=True,
                                                description="Id of the version to compare with.")],
                   responses={200: VersionCompareSerializer, **VERSION_ERRORS})
    @action(detail=True, methods=["get"])
    def compare(self, request, pk=None):
        version = self.get_object()  # another company's version: 404 before anything else
        to_id = parse_id(request.query_params.get("to"))
        if to_id is None:
            raise ValidationFailed(code="validation_failed", message="Give ?to=<version id>.")
        return Response(version_services.versions_compare(company=self.company, from_id=version.id, to_id=to_id))


@extend_schema_view(
    list=extend_schema(summary="List golden questions", tags=["versions"],
                       responses={200: GoldenQuestionSerializer(many=True), **READ_ERRORS}),
    retrieve=extend_schema(summary="Read a golden question", tags=["versions"],
                           responses={200: GoldenQuestionSerializer, **READ_ERRORS}),
    destroy=extend_schema(summary="Delete a golden question", tags=["versions"],
                          responses={204: None, **READ_ERRORS}),
)
class GoldenQuestionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, CompanyViewSet):
    """Questions a new knowledge-base version must answer right before it goes live."""

    serializer_class = GoldenQuestionSerializer
    parser_classes = [SafeJSONParser]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return GoldenQuestion.objects.none()
        return GoldenQuestion.objects.for_company(self.company).order_by("id")

    @extend_schema(summary="Add a golden question", tags=["versions"], request=GoldenQuestionSerializer,
                   parameters=[IDEMPOTENCY_PARAM], responses={201: GoldenQuestionSerializer, **GOLDEN_ERRORS})
    @idempotent
    def create(self, request, *args, **kwargs):
        serializer = GoldenQuestionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        golden = golden_service.golden_question_save(company=self.company, **serializer.validated_data)
        return Response(GoldenQuestionSerializer(golden).data, status=status.HTTP_201_CREATED)

    @extend_schema(summary="Change a golden question", tags=["versions"], request=GoldenQuestionSerializer,
                   responses={200: GoldenQuestionSerializer, **GOLDEN_ERRORS})
    def partial_update(self, request, *args, **kwargs):
        golden = self.get_object()
        serializer = GoldenQuestionSerializer(golden, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        data = {"question": golden.question, "expected": golden.expected,
                "answer_contains": golden.answer_contains, "must_refuse": golden.must_refuse,
                **serializer.validated_data}
        golden = golden_service.golden_question_save(company=self.company, golden=golden, **data)
        return Response(GoldenQuestionSerializer(golden).data)

    def destroy(self, request, *args, **kwargs):
        self.get_object().delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


class KnowledgeBaseViewSet(CompanyViewSet):
    """The company's knowledge-base settings: embedding model, live version, golden threshold."""

    parser_classes = [SafeJSONParser]

    @extend_schema(summary="Knowledge-base settings: model, live version, golden threshold", tags=["versions"],
                   responses={200: KnowledgeBaseSerializer, **READ_ERRORS})
    def current(self, request):
        return Response(KnowledgeBaseSerializer(knowledge_base_get(self.company)).data)

    @extend_schema(summary="Change the golden threshold", tags=["versions"], request=KnowledgeBaseSerializer,
                   responses={200: KnowledgeBaseSerializer,
                              **{**WRITE_ERRORS, 400: schema_error("golden_threshold_invalid or validation_failed.")}})
    def partial_update(self, request):
        others = sorted(set(request.data) - {"golden_threshold"}) if isinstance(request.data, dict) else []
        if others:  # read-only fields sent back are refused, not ignored: the client would think they changed
            raise ValidationFailed(code="validation_failed",
                                   message="Only golden_threshold can be changed here (the embedding model is "
                                           "switched in the admin).", detail={name: ["Read-only."] for name in others})
        serializer = KnowledgeBaseSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        kb = knowledge_base_get(self.company)
        if "golden_threshold" in serializer.validated_data:
            kb = knowledge_base_golden_threshold_set(company=self.company,
                                                     threshold=serializer.validated_data["golden_threshold"])
        return Response(KnowledgeBaseSerializer(kb).data)
