"""Request and response shapes of ``/documents`` and ``/collections``."""
from __future__ import annotations

from rest_framework import serializers

from rag.models import Collection, Document
from rag.selectors import document_answering
from saas_bot.api.serializers.common import CollectionField, ErrorDetailSerializer, StrictTypes


class CollectionSerializer(serializers.ModelSerializer):
    document_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Collection
        fields = ("id", "name", "description", "document_count", "created_at")
        read_only_fields = fields


class DocumentSerializer(serializers.ModelSerializer):
    source_url = serializers.CharField(read_only=True, help_text="The page it was fetched from; empty = none.")
    answering = serializers.SerializerMethodField(
        help_text="The bots answer from it: its chunks are in the live knowledge-base version. False while it "
                  "is indexed or its version is held, and after a rollback to a version without it.")

    class Meta:
        model = Document
        fields = ("id", "title", "file_name", "source_url", "collection", "checksum", "size_bytes", "status",
                  "progress", "error", "chunk_count", "token_count", "answering", "created_at", "indexed_at")
        read_only_fields = fields

    def get_answering(self, document: Document) -> bool:
        answering = getattr(document, "answering", None)  # annotated by the list (one query for the page)
        return document_answering(document.id) if answering is None else bool(answering)


class DocumentUploadSerializer(StrictTypes, serializers.Serializer):
    """multipart/form-data: one or more ``files``, an optional ``collection`` id."""

    files = serializers.ListField(child=serializers.FileField(allow_empty_file=True), min_length=1)
    collection = CollectionField(required=False, allow_null=True)

    def validate_files(self, files):
        """At most ``API_UPLOAD_MAX_FILES`` files per request (nothing is stored when there are more)."""
        from django.conf import settings

        if len(files) > settings.API_UPLOAD_MAX_FILES:
            raise serializers.ValidationError(
                f"At most {settings.API_UPLOAD_MAX_FILES} files per request; {len(files)} were sent.")
        return files


class DocumentCreateSerializer(StrictTypes, serializers.Serializer):
    """JSON: ``{"url"}`` (fetched) or ``{"title", "text"}`` (pasted), with an optional ``collection`` id."""

    url = serializers.CharField(required=False, max_length=2000)
    title = serializers.CharField(required=False, allow_blank=True, max_length=300)
    text = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    collection = CollectionField(required=False, allow_null=True)

    def validate(self, attrs):
        if "url" in attrs and "text" in attrs:
            raise serializers.ValidationError("Give either url or title and text, not both.")
        if "url" not in attrs and "text" not in attrs:
            raise serializers.ValidationError("Give url, or title and text (or upload files as multipart).")
        return attrs


class DocumentOutcomeSerializer(serializers.Serializer):
    """What happened to one file (or URL, or text) of a create request."""

    name = serializers.CharField(help_text="The file name, URL or title.")
    outcome = serializers.ChoiceField(choices=["created", "duplicate", "failed"],
                                      help_text="duplicate: the same content is already stored (that document).")
    document = DocumentSerializer(allow_null=True)
    error = ErrorDetailSerializer(allow_null=True)


class DocumentCreateResponseSerializer(serializers.Serializer):
    results = DocumentOutcomeSerializer(many=True)
