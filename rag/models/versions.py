"""Knowledge-base versions and golden questions (rag/versions.py, rag/golden.py; issue 17)."""
from __future__ import annotations

from django.db import models

from saas_bot.models import CompanyQuerySet


class KnowledgeBaseVersion(models.Model):
    """One state of a company's knowledge base: which revision of each document answers.

    Every batch of document changes (upload, delete, replace, sync run; rag/services.py) makes one. It is
    *building* until its documents are indexed, then checked against the company's golden questions and
    made *live*, or *held* with the failing questions. rag/versions.py; docs/knowledge-base.md.
    """

    class Status(models.TextChoices):
        BUILDING = "building", "Building"
        HELD = "held", "Held (golden questions failed)"
        LIVE = "live", "Live"
        RETIRED = "retired", "Retired (was live)"
        DISCARDED = "discarded", "Discarded"

    company = models.ForeignKey("tenants.Company", on_delete=models.CASCADE, related_name="+")
    number = models.PositiveIntegerField(help_text="1, 2, 3 ... per company.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.BUILDING)
    origin = models.CharField(max_length=20, help_text="upload, replace, delete, sync_run, source_delete.")
    origin_id = models.BigIntegerField(null=True, blank=True, help_text="The SyncRun's id for a sync run.")
    changes = models.JSONField(default=list, blank=True,
                               help_text="[{action, document_id, title}]: what this version changed.")
    revisions = models.JSONField(null=True, blank=True,
                                 help_text="{document id: revision} answering in this version (set when built).")
    added = models.PositiveIntegerField(default=0)
    changed = models.PositiveIntegerField(default=0)
    removed = models.PositiveIntegerField(default=0)
    golden_results = models.JSONField(default=list, blank=True,
                                      help_text="[{id, question, passed, passed_live, answer, ...}] of the check.")
    golden_passed = models.PositiveIntegerField(null=True, blank=True)
    golden_total = models.PositiveIntegerField(null=True, blank=True)
    note = models.TextField(blank=True, help_text="Why it is held, who forced or discarded it.")
    created_at = models.DateTimeField(auto_now_add=True)
    built_at = models.DateTimeField(null=True, blank=True)
    live_at = models.DateTimeField(null=True, blank=True, help_text="When it last went live.")

    objects = CompanyQuerySet.as_manager()

    class Meta:
        ordering = ["-number"]
        constraints = [models.UniqueConstraint(fields=["company", "number"], name="kbversion_unique_company_number")]

    def __str__(self) -> str:
        return f"version {self.number}"


class GoldenQuestion(models.Model):
    """A question a company's bot must always answer right, checked before a new version goes live.

    The fields of an evaluation-set row (bench/data/README.md): ``expected`` file names one of which must
    be cited, ``answer_contains`` strings one of which the answer must contain, or ``must_refuse``.
    Scored by rag/answer_evaluation.py.
    """

    company = models.ForeignKey("tenants.Company", on_delete=models.CASCADE, related_name="+")
    question = models.TextField()
    expected = models.JSONField(default=list, blank=True, help_text="File names; citing one of them passes.")
    answer_contains = models.JSONField(default=list, blank=True,
                                       help_text="Strings; the answer must contain one (case-insensitive).")
    must_refuse = models.BooleanField(default=False, help_text="The right answer is \"I don't know\".")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = CompanyQuerySet.as_manager()

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.question[:80]

    def as_row(self) -> dict:
        """The question as an evaluation-set row (rag.answer_evaluation.score_row's ``row``)."""
        return {"id": str(self.id), "question": self.question, "expected": list(self.expected or []),
                "answer_contains": list(self.answer_contains or []), "kind": "golden"}
