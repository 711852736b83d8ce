"""Documents for company admins: add several files, a URL or pasted text; re-index; delete.

Adding goes through ``rag.document_batch.documents_add``, as the API's ``POST /documents`` does: unsupported
types, too large or empty files and plan limits are refused per item before anything is stored, with the
service's message and code. The form only validates; re-index and delete are the services' too.
"""
from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html

from rag import services
from rag.document_batch import DocumentItem, documents_add
from rag.models import Document
from rag.selectors import documents_with_answering
from saas_bot.admin_save import RefusalShownAdmin, SaveRefused, with_save_refusal
from tenants.access import current_company, is_platform_staff
from tenants.admin_scoping import CompanyScopedAdmin
from tenants.models import Company


class MultipleFileInput(forms.ClearableFileInput):
    """A file input that accepts several files (Django docs, "Uploading multiple files")."""

    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", MultipleFileInput())
        kwargs.setdefault("allow_empty_file", True)  # document_add reports it with its code
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        single_file_clean = super().clean
        if isinstance(data, (list, tuple)):
            return [single_file_clean(d, initial) for d in data]
        return [single_file_clean(data, initial)] if data else []


class DocumentAddForm(forms.ModelForm):
    """Several files, a URL, or pasted text. Validates only; ``DocumentAdmin.save_form`` adds them through
    ``rag.document_batch.documents_add`` (the API's service), each item reported on its own."""

    files = MultipleFileField(required=False, help_text="PDF, DOCX, Markdown, HTML or text; several at once.")
    url = forms.URLField(required=False, assume_scheme="https", label="URL",
                         help_text="A web page to fetch and index (its text is extracted).")
    text_title = forms.CharField(required=False, max_length=300, label="Title of the pasted text")
    text = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 8}),
                           help_text="Paste text or Markdown (# headings become sections).")

    class Meta:
        model = Document
        fields = ["collection"]

    def __init__(self, *args, company: Company | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.target_company = company
        if company is None:
            self.fields["company_choice"] = forms.ModelChoiceField(Company.objects.all(), label="Company")

    def clean(self):
        cleaned = super().clean()
        if not cleaned.get("files") and not cleaned.get("url") and not cleaned.get("text"):
            raise forms.ValidationError("Choose files, give a URL, or paste text.")
        return cleaned

    @property
    def company(self) -> Company | None:
        """The company the documents go to: the user's, or the one platform staff chose."""
        return self.target_company or self.cleaned_data.get("company_choice")

    def items(self) -> list[DocumentItem]:
        """What to add, in the page's order: the files, the URL, the pasted text."""
        cleaned = self.cleaned_data
        items = [DocumentItem.from_file(f.name, f) for f in cleaned.get("files") or []]
        if cleaned.get("url"):
            items.append(DocumentItem.from_url(cleaned["url"]))
        if cleaned.get("text"):
            items.append(DocumentItem.from_text(cleaned.get("text_title") or "", cleaned["text"]))
        return items


@admin.register(Document)
class DocumentAdmin(RefusalShownAdmin, CompanyScopedAdmin):
    list_display = ("title", "status_display", "answering", "chunk_count", "token_count", "collection", "size",
                    "source", "created_at")
    list_filter = ("status", "collection")
    search_fields = ("title", "file_name", "source_url")
    actions = ["export_csv", "reindex", "delete_documents"]
    fields = ("title", "collection", "file_name", "source_url", "status_display", "answering", "error", "error_code",
              "ingest_attempts", "chunk_count", "token_count", "size", "created_at", "indexed_at")
    readonly_fields = ("file_name", "source_url", "status_display", "answering", "error", "error_code",
                       "ingest_attempts", "chunk_count", "token_count", "size", "created_at", "indexed_at")

    def get_queryset(self, request):
        return documents_with_answering(super().get_queryset(request))

    @admin.display(description="Answering", boolean=True, ordering="answering")
    def answering(self, obj):
        """In the live knowledge-base version (rag.selectors.documents_with_answering)."""
        return obj.answering

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # deleting goes through document_delete (chunks too)
        return actions

    def get_fields(self, request, obj=None):
        if obj is None:
            fields = ["files", "url", "text_title", "text", "collection"]
            return fields + (["company_choice"] if is_platform_staff(request.user) else [])
        return super().get_fields(request, obj)

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else self.readonly_fields

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is not None:
            return super().get_form(request, obj, change=change, **kwargs)
        company = None if is_platform_staff(request.user) else current_company(request)
        kwargs["fields"] = ["collection"]
        base = super().get_form(request, obj, change=change, form=DocumentAddForm, **kwargs)

        class Form(base):
            def __init__(self, *args, **kw):
                super().__init__(*args, company=company, **kw)

        return with_save_refusal(request, Form)

    def save_form(self, request, form, change):
        """Adding: ``documents_add`` (the API's service) with a message per item. When every item is refused
        the form is shown again with each refusal (``SaveRefused``); nothing was stored."""
        if change:
            return super().save_form(request, form, change)
        result = documents_add(company=form.company, items=form.items(), collection=form.cleaned_data.get("collection"))
        refusals = [f"{o.name}: {o.error.message} ({o.error.code})" for o in result.failed]
        if result.all_failed:
            raise SaveRefused(refusals)
        # Said after the commit: the ingestion queued by documents_add runs first (on commit too), so without a
        # broker the documents are indexed by then and the message says how it went, not "being indexed".
        created = [d.pk for d in result.created]
        transaction.on_commit(lambda: self._say_added(request, created))
        for document in result.duplicates:
            if document.status == Document.Status.FAILED:
                messages.warning(request, f"“{document.title}” has the same content as a stored document that could "
                                          f"not be indexed ({document.error_code}); not added again. Fix the file, or "
                                          "delete the stored one first.")
            else:
                messages.info(request, f"“{document.title}” has the same content as a stored document; not added "
                                       "again.")
        for refusal in refusals:
            messages.error(request, f"Not added: {refusal}")
        return (result.created or result.duplicates)[0]

    def _say_added(self, request, document_ids: list[int]) -> None:
        for document in Document.objects.filter(pk__in=document_ids).order_by("pk"):
            if document.status == Document.Status.READY:
                messages.success(request, f"Added “{document.title}”: indexed ({document.chunk_count} chunks).")
            elif document.status == Document.Status.FAILED:
                messages.error(request, f"Added “{document.title}”, but it could not be indexed: {document.error} "
                                        f"({document.error_code}).")
            else:
                messages.success(request, f"Added “{document.title}”: it is being indexed.")

    def save_model(self, request, obj, form, change):
        if change:
            obj.save(update_fields=[f for f in ("title", "collection") if f in form.changed_data] or ["title"])

    def save_related(self, request, form, formsets, change):
        if change:
            super().save_related(request, form, formsets, change)

    def response_add(self, request, obj, post_url_continue=None):
        return HttpResponseRedirect(reverse("admin:rag_document_changelist"))

    def delete_model(self, request, obj):
        services.document_delete(company=obj.company, document_id=obj.pk)

    def delete_queryset(self, request, queryset):
        _documents_delete(queryset)

    def changelist_view(self, request, extra_context=None):
        extra_context = dict(extra_context or {})
        # The list reloads itself while something is being indexed (the template adds a meta refresh).
        extra_context["auto_refresh_seconds"] = 5 if self.get_queryset(request).filter(
            status__in=[Document.Status.PENDING, Document.Status.PROCESSING]).exists() else None
        problem = services.ingestion_configuration_problem()
        if problem is not None and request.method == "GET":
            # The deployment, not a file: one message on the page instead of a failure on every document.
            messages.error(request, f"{problem.message} ({problem.code})")
        return super().changelist_view(request, extra_context)

    @admin.display(description="Status", ordering="status")
    def status_display(self, obj):
        if obj.status == Document.Status.PROCESSING:
            return format_html('<span class="doc-status processing">Processing {}%</span>'
                               '<progress max="100" value="{}"></progress>', obj.progress, obj.progress)
        if obj.status == Document.Status.FAILED:
            return format_html('<span class="doc-status failed" title="{} ({})">Failed: {}</span>', obj.error,
                               obj.error_code or "no code", obj.error[:120] or "unknown reason")
        return format_html('<span class="doc-status {}">{}</span>', obj.status, obj.get_status_display())

    @admin.display(description="Size", ordering="size_bytes")
    def size(self, obj):
        from django.template.defaultfilters import filesizeformat

        return filesizeformat(obj.size_bytes)

    @admin.display(description="Source")
    def source(self, obj):
        if obj.source_url:
            return format_html('<a href="{}" rel="noopener">{}</a>', obj.source_url, obj.source_url[:60])
        return obj.file_name

    @admin.action(description="Re-index selected documents", permissions=["change"])
    def reindex(self, request, queryset):
        for document in queryset:
            services.document_reindex(company=document.company, document_id=document.pk)
        messages.success(request, f"{queryset.count()} document(s) queued for indexing.")

    @admin.action(description="Delete selected documents", permissions=["delete"])
    def delete_documents(self, request, queryset):
        count = _documents_delete(queryset)
        messages.success(request, f"Deleted {count} document(s): one new knowledge-base version. To bring them "
                                  "back, roll back to the version before it under Knowledge base versions, or "
                                  "discard it if a golden question held it.")


def _documents_delete(queryset) -> int:
    """Delete the selected documents through ``document_delete``, one change batch (one knowledge-base
    version) per company. Returns how many were deleted."""
    by_company: dict[int, list[Document]] = {}
    for document in queryset.select_related("company"):
        by_company.setdefault(document.company_id, []).append(document)
    count = 0
    for documents in by_company.values():
        company = documents[0].company
        with transaction.atomic(), services.document_change_batch(company=company, origin="delete") as batch:
            for document in documents:
                services.document_delete(company=company, document_id=document.pk, batch=batch)
                count += 1
    return count
