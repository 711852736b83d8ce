"""API v1 shapes of knowledge-base versions and golden questions (rag/versions.py)."""
from __future__ import annotations

from rest_framework import serializers

from rag.models import GoldenQuestion, KnowledgeBaseVersion
from saas_bot.api.serializers.common import StrictTypes


class VersionChangeSerializer(serializers.Serializer):
    action = serializers.ChoiceField(choices=["added", "changed", "removed"])
    document_id = serializers.IntegerField()
    title = serializers.CharField(allow_blank=True)


class GoldenResultSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="The golden question.")
    question = serializers.CharField()
    passed = serializers.BooleanField(help_text="On this version.")
    passed_live = serializers.BooleanField(help_text="On the version live when it was checked.")
    refused = serializers.BooleanField()
    answer = serializers.CharField(allow_blank=True)
    sources = serializers.ListField(child=serializers.CharField(allow_null=True))


class VersionSerializer(serializers.ModelSerializer):
    """One knowledge-base version: what it changed, its status and its golden check."""

    changes = VersionChangeSerializer(many=True, read_only=True)
    golden_results = GoldenResultSerializer(many=True, read_only=True)

    class Meta:
        model = KnowledgeBaseVersion
        fields = ("id", "number", "status", "origin", "origin_id", "added", "changed", "removed", "changes",
                  "golden_passed", "golden_total", "golden_results", "note", "created_at", "built_at", "live_at")
        read_only_fields = fields


class VersionDocumentSerializer(serializers.Serializer):
    document_id = serializers.IntegerField()
    title = serializers.CharField(allow_blank=True)


class VersionCompareSerializer(serializers.Serializer):
    """Documents added, changed (another revision) and removed going from one version to another."""

    from_ = serializers.IntegerField(help_text="Number of the first version.")
    to = serializers.IntegerField(help_text="Number of the second version.")
    added = VersionDocumentSerializer(many=True)
    changed = VersionDocumentSerializer(many=True)
    removed = VersionDocumentSerializer(many=True)

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = fields.pop("from_")  # "from" is a Python keyword
        return fields


class GoldenQuestionSerializer(StrictTypes, serializers.ModelSerializer):
    """A question the bot must answer right: cite one of ``expected``, contain one of ``answer_contains``,
    or refuse (``must_refuse``)."""

    expected = serializers.ListField(child=serializers.CharField(max_length=255), required=False, max_length=50)
    answer_contains = serializers.ListField(child=serializers.CharField(max_length=500), required=False,
                                            max_length=50)
    question = serializers.CharField(max_length=2000)

    class Meta:
        model = GoldenQuestion
        fields = ("id", "question", "expected", "answer_contains", "must_refuse", "created_at")
        read_only_fields = ("id", "created_at")


class KnowledgeBaseSerializer(StrictTypes, serializers.Serializer):
    """The company's knowledge-base settings (``GET`` / ``PATCH /knowledge-base``); only ``golden_threshold``
    can be changed here (the embedding model is switched in the admin, docs/retrieval.md)."""

    embedding_model = serializers.CharField(read_only=True)
    next_embedding_model = serializers.CharField(read_only=True,
                                                 help_text="The model being switched to; empty: no switch.")
    live_version = serializers.SerializerMethodField(help_text="The number of the version the bots answer from.")
    live_version_id = serializers.IntegerField(read_only=True, allow_null=True)
    golden_threshold = serializers.FloatField(
        allow_null=True, required=False,
        help_text="Share of golden questions (0-1) a new version must pass to go live; null: no golden "
                  "question that passed on the live version may fail on the new one.")
    versions_kept = serializers.SerializerMethodField(
        help_text="How many versions that were live are kept for rollback (RAG_VERSIONS_KEPT).")

    def get_live_version(self, kb) -> int | None:
        return kb.live_version.number if kb.live_version_id else None

    def get_versions_kept(self, kb) -> int:
        from django.conf import settings

        return settings.RAG_VERSIONS_KEPT
