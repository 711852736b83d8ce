"""API v1 ``/documents`` (add several with per-item outcomes, delete, re-index) and ``/collections``."""
from __future__ import annotations

from django.conf import settings
from django.db.models import Count
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from rag import services as document_services
from rag.document_batch import DocumentItem, documents_add
from rag.models import Collection, Document
from rag.selectors import documents_with_answering
from saas_bot.api import serializers as s
from saas_bot.api.exceptions import STATUS_BY_CODE, error_body
from saas_bot.api.filters import DocumentFilter
from saas_bot.api.idempotency import idempotent
from saas_bot.api.parsers import SafeJSONParser
from saas_bot.api.views.base import IDEMPOTENCY_PARAM, READ_ERRORS, WRITE_ERRORS, CompanyViewSet, schema_error


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
        return documents_with_answering(Document.objects.for_company(self.company)).order_by("-created_at", "-id")

    @extend_schema(
        summary="Add documents: upload files (multipart), or give a URL or a title and text (JSON)",
        tags=["documents"], parameters=[IDEMPOTENCY_PARAM],
        request={"multipart/form-data": s.DocumentUploadSerializer, "application/json": s.DocumentCreateSerializer},
        responses={201: OpenApiResponse(s.DocumentCreateResponseSerializer,
                                        description="At least one document was added; each file's outcome."),
                   200: OpenApiResponse(s.DocumentCreateResponseSerializer,
                                        description="Nothing new: every file was already stored (duplicate)."),
                   **WRITE_ERRORS,
                   400: schema_error("document_unsupported_type / document_empty / document_url_invalid / "
                                     "document_url_unreachable / validation_failed (every file failed: detail has "
                                     "each outcome; nothing stored)."),
                   413: schema_error("document_too_large / request_too_large."),
                   429: schema_error("quota_documents / quota_storage, or throttled."),
                   402: schema_error("no_subscription.")},
        examples=[OpenApiExample("from text", request_only=True, media_type="application/json",
                                 value={"title": "Refunds", "text": "# Refunds\nRefunds take 5 days."}),
                  OpenApiExample("from a URL", request_only=True, media_type="application/json",
                                 value={"url": "https://example.com/help/refunds.html"})])
    @idempotent
    def create(self, request, *args, **kwargs):
        """Several files (multipart), or one URL or text (JSON), added by ``rag.document_batch.documents_add``:
        201 when one was created, 200 when all were duplicates, the first refusal's error when all failed."""
        context = self.get_serializer_context()
        if request.content_type.startswith("application/json"):
            serializer = s.DocumentCreateSerializer(data=request.data, context=context)
            serializer.is_valid(raise_exception=True)
            data = serializer.validated_data
            items = [DocumentItem.from_url(data["url"], title=data.get("title")) if "url" in data
                     else DocumentItem.from_text(data.get("title", ""), data["text"])]
        else:
            serializer = s.DocumentUploadSerializer(data={"files": request.FILES.getlist("files"),
                                                          **({"collection": request.data["collection"]}
                                                             if request.data.get("collection") else {})},
                                                    context={**context, "form_encoded": True})
            serializer.is_valid(raise_exception=True)
            data = serializer.validated_data
            items = [DocumentItem.from_file(upload.name, upload) for upload in data["files"]]
        batch = documents_add(company=self.company, items=items, collection=data.get("collection"))
        results = [{"name": o.name, "outcome": o.outcome,
                    "document": s.DocumentSerializer(o.document).data if o.document is not None else None,
                    "error": {"code": o.error.code, "message": o.error.message, "detail": o.error.detail}
                    if o.error is not None else None} for o in batch.outcomes]
        first_error = batch.first_error
        if first_error is not None and batch.all_failed:
            return Response(error_body(first_error.code, first_error.message, {"results": results}),
                            status=STATUS_BY_CODE.get(first_error.code, first_error.status))
        return Response({"results": results},
                        status=status.HTTP_201_CREATED if batch.created else status.HTTP_200_OK)

    def max_body_bytes(self) -> int:
        """Uploads (``POST /documents``) may be up to ``API_UPLOAD_MAX_BYTES``."""
        return settings.API_UPLOAD_MAX_BYTES if self.action == "create" else super().max_body_bytes()

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
