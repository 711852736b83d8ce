"""API v1 shapes of knowledge-base versions and golden questions (rag/versions.py)."""
from __future__ import annotations

from rest_framework import serializers

from rag.models import GoldenQuestion, KnowledgeBaseVersion


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


class GoldenQuestionSerializer(serializers.ModelSerializer):
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
