"""Request and response shapes of ``/sources`` and ``/sync-runs`` (docs/knowledge-base.md)."""
from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from rag.models import Source, SyncRun
from saas_bot.api.serializers.common import CollectionField, StrictTypes


class SyncRunFailureSerializer(serializers.Serializer):
    url = serializers.CharField()
    code = serializers.CharField()
    message = serializers.CharField()


class SyncRunSerializer(serializers.ModelSerializer):
    """One sync run: progress (pages_done of pages_total), the summary, failed pages, bytes received."""

    failures = SyncRunFailureSerializer(many=True, read_only=True)

    class Meta:
        model = SyncRun
        fields = ("id", "source", "status", "trigger", "pages_done", "pages_total", "added", "changed", "removed",
                  "failed", "unchanged", "bytes_received", "failures", "error", "alerted", "created_at",
                  "started_at", "finished_at")
        read_only_fields = fields


class KnowledgeSourceSerializer(serializers.ModelSerializer):
    """A website, sitemap or single URL kept in sync, with its latest run (null before the first)."""

    last_run = serializers.SerializerMethodField()

    class Meta:
        model = Source
        fields = ("id", "name", "kind", "url", "include_patterns", "exclude_patterns", "max_pages", "max_depth",
                  "schedule", "collection", "change_alert_percent", "last_synced_at", "created_at", "last_run")
        read_only_fields = fields

    @extend_schema_field(SyncRunSerializer(allow_null=True))
    def get_last_run(self, source):
        run = source.runs.order_by("-created_at", "-id").first()
        return SyncRunSerializer(run).data if run is not None else None


class KnowledgeSourceWriteSerializer(StrictTypes, serializers.ModelSerializer):
    """The settings of a source (POST: name and url required; PATCH: any of them)."""

    collection = CollectionField(required=False, allow_null=True)

    class Meta:
        model = Source
        fields = ("name", "kind", "url", "include_patterns", "exclude_patterns", "max_pages", "max_depth",
                  "schedule", "collection", "change_alert_percent")
