"""Knowledge-base versions and golden questions in the admin (rag/versions.py; docs/admin.md).

Versions are read-only rows with actions: roll back to a version, force a held version live, discard it,
check it again against the golden questions, compare two versions. Golden questions are edited through
``rag.golden.golden_question_save``; their list shows whether each passed on the newest checked version.
The knowledge-base settings page gains the golden threshold. Rights come from the membership role
(tenants/admin_scoping.py): viewers see, owners and admins act.
"""
from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.utils.html import format_html, format_html_join

from rag import golden as golden_service, version_actions as versions
from rag.knowledge_base import knowledge_base_golden_threshold_set
from rag.models import GoldenQuestion, KnowledgeBase, KnowledgeBaseVersion
from saas_bot.admin_save import SaveRefused
from saas_bot.errors import ServiceError
from tenants.access import current_company, is_platform_staff
from tenants.admin_scoping import CompanyScopedAdmin

Status = KnowledgeBaseVersion.Status


def _run(request, action, version: KnowledgeBaseVersion, done: str) -> None:
    try:
        action(company=version.company, version_id=version.id)
    except ServiceError as exc:
        messages.error(request, f"Version {version.number}: {exc.message} ({exc.code})")
        return
    version.refresh_from_db()
    messages.success(request, done.format(number=version.number, status=version.get_status_display()))


@admin.register(KnowledgeBaseVersion)
class KnowledgeBaseVersionAdmin(CompanyScopedAdmin):
    """Every batch of document changes is a version; the live one answers (docs/knowledge-base.md)."""

    list_display = ("number", "status_badge", "origin", "added", "changed", "removed", "golden", "created_at",
                    "live_at")
    list_filter = ("status", "origin")
    actions = ["rollback_action", "force_action", "discard_action", "recheck_action", "compare_action"]
    fields = readonly_fields = ("number", "status_badge", "origin", "origin_id", "added", "changed", "removed",
                                "change_list", "golden", "golden_table", "note", "created_at", "built_at", "live_at")

    def has_add_permission(self, request, *args):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="Status", ordering="status")
    def status_badge(self, obj):
        css = {"live": "ready", "held": "failed", "building": "processing"}.get(obj.status, "pending")
        return format_html('<span class="doc-status {}">{}</span>', css, obj.get_status_display())

    @admin.display(description="Golden questions")
    def golden(self, obj):
        if obj.golden_total is None:
            return "—"
        return f"{obj.golden_passed} of {obj.golden_total} passed"

    @admin.display(description="What changed")
    def change_list(self, obj):
        if not obj.changes:
            return "—"
        return format_html_join("", "<div>{} — {} (#{})</div>",
                                ((c["action"], c.get("title") or "?", c["document_id"]) for c in obj.changes))

    @admin.display(description="Golden check")
    def golden_table(self, obj):
        if not obj.golden_results:
            return "—"
        rows = format_html_join(
            "", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((r["question"], "pass" if r["passed"] else "FAIL", "pass" if r["passed_live"] else "fail",
              (r.get("answer") or "")[:300]) for r in obj.golden_results))
        return format_html("<table><tr><th>Question</th><th>This version</th><th>Live version</th>"
                           "<th>Answer</th></tr>{}</table>", rows)

    @admin.action(description="Roll back to the selected version (live at once)", permissions=["change"])
    def rollback_action(self, request, queryset):
        chosen = list(queryset)
        if len(chosen) != 1:  # several would each go live in turn, and the last one processed would stay
            messages.error(request, "Select exactly one version to roll back to.")
            return
        _run(request, versions.version_rollback, chosen[0], "Version {number} is live again.")

    @admin.action(description="Force the selected held version live", permissions=["change"])
    def force_action(self, request, queryset):
        for version in queryset:
            _run(request, versions.version_force, version, "Version {number} was forced live.")

    @admin.action(description="Discard the selected held versions", permissions=["change"])
    def discard_action(self, request, queryset):
        for version in queryset:
            _run(request, versions.version_discard, version, "Version {number} was discarded.")

    @admin.action(description="Check the selected held versions against the golden questions again",
                  permissions=["change"])
    def recheck_action(self, request, queryset):
        for version in queryset:
            _run(request, versions.version_recheck, version, "Version {number}: {status}.")

    @admin.action(description="Compare the two selected versions", permissions=["change"])  # viewers: export only
    def compare_action(self, request, queryset):
        chosen = sorted(queryset, key=lambda v: v.number)
        if len(chosen) != 2:
            messages.error(request, "Select exactly two versions to compare.")
            return
        try:
            diff = versions.versions_compare(company=chosen[0].company, from_id=chosen[0].id, to_id=chosen[1].id)
        except ServiceError as exc:
            messages.error(request, f"{exc.message} ({exc.code})")
            return

        def names(items):
            return ", ".join(i["title"] or f"#{i['document_id']}" for i in items) or "none"

        messages.info(request, f"From version {diff['from']} to {diff['to']}: added {names(diff['added'])}; "
                               f"changed {names(diff['changed'])}; removed {names(diff['removed'])}.")


class _LinesField(forms.CharField):
    """One item a line, as a list."""

    widget = forms.Textarea(attrs={"rows": 3})

    def prepare_value(self, value):
        return "\n".join(value) if isinstance(value, list) else value

    def to_python(self, value):
        return [line.strip() for line in (value or "").splitlines() if line.strip()]


class GoldenQuestionForm(forms.ModelForm):
    expected = _LinesField(required=False, help_text="Document file names, one a line; citing one passes.")
    answer_contains = _LinesField(required=False, help_text="Texts, one a line; the answer must contain one.")

    class Meta:
        model = GoldenQuestion
        fields = ["question", "expected", "answer_contains", "must_refuse"]


@admin.register(GoldenQuestion)
class GoldenQuestionAdmin(CompanyScopedAdmin):
    """Questions a new version must answer right before it goes live."""

    form = GoldenQuestionForm
    list_display = ("question", "criteria", "last_result")
    search_fields = ("question",)

    def get_fields(self, request, obj=None):
        fields = ["question", "expected", "answer_contains", "must_refuse"]
        return (["company"] if is_platform_staff(request.user) and obj is None else []) + fields

    @admin.display(description="Right answer")
    def criteria(self, obj):
        if obj.must_refuse:
            return "must refuse"
        parts = []
        if obj.expected:
            parts.append("cites " + " or ".join(obj.expected))
        if obj.answer_contains:
            parts.append("contains " + " or ".join(f"“{a}”" for a in obj.answer_contains))
        return "; ".join(parts)

    @admin.display(description="Last check")
    def last_result(self, obj):
        latest = (KnowledgeBaseVersion.objects.filter(company_id=obj.company_id).exclude(golden_total=None)
                  .order_by("-number").first())
        result = next((r for r in (latest.golden_results if latest else []) if r["id"] == obj.id), None)
        if result is None:
            return "not checked yet"
        label = "passed" if result["passed"] else "FAILED"
        return format_html('<span class="doc-status {}">{} on version {}</span>',
                           "ready" if result["passed"] else "failed", label, latest.number)

    def save_model(self, request, obj, form, change):
        company = obj.company if (change or is_platform_staff(request.user)) else current_company(request)
        data = form.cleaned_data
        try:
            saved = golden_service.golden_question_save(
                company=company, question=data["question"], expected=data.get("expected"),
                answer_contains=data.get("answer_contains"), must_refuse=data.get("must_refuse", False),
                golden=GoldenQuestion.objects.get(pk=obj.pk) if change else None)
        except ServiceError as exc:
            messages.error(request, f"{exc.message} ({exc.code})")
            return
        obj.pk, obj.id, obj.company = saved.pk, saved.id, company


def _with_threshold(base: type[admin.ModelAdmin]) -> type[admin.ModelAdmin]:
    """The registered KnowledgeBase admin, with the golden threshold added to its page."""

    class Form(base.form):
        class Meta(base.form.Meta):
            fields = [*base.form.Meta.fields, "golden_threshold"]

    class KnowledgeBaseWithGoldenAdmin(base):
        form = Form

        def get_fields(self, request, obj=None):
            return [*super().get_fields(request, obj), "golden_threshold"]

        def save_model(self, request, obj, form, change):
            try:
                knowledge_base_golden_threshold_set(company=obj.company,
                                                    threshold=form.cleaned_data.get("golden_threshold"))
            except ServiceError as exc:  # shown beside the field, the form kept, nothing saved
                raise SaveRefused.of(exc, field="golden_threshold") from None
            super().save_model(request, obj, form, change)

    KnowledgeBaseWithGoldenAdmin.__name__ = base.__name__
    return KnowledgeBaseWithGoldenAdmin


if admin.site.is_registered(KnowledgeBase):
    _base = type(admin.site._registry[KnowledgeBase])
    admin.site.unregister(KnowledgeBase)
    admin.site.register(KnowledgeBase, _with_threshold(_base))
