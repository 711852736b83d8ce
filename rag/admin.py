"""Documents, collections and sources for company admins (the "Knowledge" group of the index).

Adding goes through ``rag.services`` (document_add, document_add_url, document_add_text): unsupported
types, too large or empty files and plan limits are refused before anything is stored, with the
service's message and code. Re-index and delete are the services' too.
"""
from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from rag import services, sources
from rag.models import Collection, Document, KnowledgeBase, Source, SyncRun
from rag.sources import SOURCE_FIELDS
from saas_bot.errors import ServiceError
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
    """Several files, a URL, or pasted text; each item is added by its service and reported on its own."""

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
        self.added: list[Document] = []
        self.duplicates: list[Document] = []
        self.item_errors: list[str] = []
        if company is None:
            self.fields["company_choice"] = forms.ModelChoiceField(Company.objects.all(), label="Company")

    def clean(self):
        cleaned = super().clean()
        company = self.target_company or cleaned.get("company_choice")
        files, url, text = cleaned.get("files") or [], cleaned.get("url"), cleaned.get("text")
        if not files and not url and not text:
            raise forms.ValidationError("Choose files, give a URL, or paste text.")
        if company is None or self.errors:
            return cleaned
        collection = cleaned.get("collection")
        items = [(f.name, lambda f=f: services.document_add(company=company, file_name=f.name, data=f.read(),
                                                              collection=collection)) for f in files]
        if url:
            items.append((url, lambda: services.document_add_url(company=company, url=url, collection=collection)))
        if text:
            items.append((cleaned.get("text_title") or "pasted text", lambda: services.document_add_text(
                company=company, title=cleaned.get("text_title") or "", text=text, collection=collection)))
        for label, add in items:
            try:
                result = add()
            except ServiceError as exc:
                self.item_errors.append(f"{label}: {exc.message} ({exc.code})")
                continue
            document, created = result if isinstance(result, tuple) else (result, True)
            (self.added if created else self.duplicates).append(document)
        if not self.added and not self.duplicates:
            raise forms.ValidationError(self.item_errors)
        return cleaned


@admin.register(Document)
class DocumentAdmin(CompanyScopedAdmin):
    list_display = ("title", "status_display", "chunk_count", "token_count", "collection", "size", "source",
                    "created_at")
    list_filter = ("status", "collection")
    search_fields = ("title", "file_name", "source_url")
    actions = ["export_csv", "reindex", "delete_documents"]
    fields = ("title", "collection", "file_name", "source_url", "status_display", "error", "error_code",
              "ingest_attempts", "chunk_count", "token_count", "size", "created_at", "indexed_at")
    readonly_fields = ("file_name", "source_url", "status_display", "error", "error_code", "ingest_attempts",
                       "chunk_count", "token_count", "size", "created_at", "indexed_at")

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

        return Form

    def save_form(self, request, form, change):
        if change:
            return super().save_form(request, form, change)
        for document in form.added:
            messages.success(request, f"Added “{document.title}”: it is being indexed.")
        for document in form.duplicates:
            messages.info(request, f"“{document.title}” has the same content as a stored document; not added again.")
        for error in form.item_errors:
            messages.error(request, f"Not added: {error}")
        return (form.added or form.duplicates)[0]

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
        for document in queryset:
            services.document_delete(company=document.company, document_id=document.pk)

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

    @admin.action(description="Delete selected documents (and their chunks)", permissions=["delete"])
    def delete_documents(self, request, queryset):
        count = 0
        for document in queryset:
            services.document_delete(company=document.company, document_id=document.pk)
            count += 1
        messages.success(request, f"Deleted {count} document(s) and their chunks.")


@admin.register(Collection)
class CollectionAdmin(CompanyScopedAdmin):
    list_display = ("name", "description", "document_count", "bot_list")
    search_fields = ("name",)
    fields = ("name", "description")

    def get_fields(self, request, obj=None):
        return (["company"] if is_platform_staff(request.user) else []) + ["name", "description"]

    @admin.display(description="Documents")
    def document_count(self, obj):
        return obj.documents.count()

    @admin.display(description="Used by bots")
    def bot_list(self, obj):
        return ", ".join(str(bot) for bot in obj.bots.all()) or "—"

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        company = obj.company if obj is not None else current_company(request)

        class Form(form):
            def clean_name(self):
                # The (company, name) constraint is not checked by the form when company is not a form field.
                name = self.cleaned_data["name"]
                owner = company or self.cleaned_data.get("company")
                taken = Collection.objects.filter(company=owner, name__iexact=name)
                if self.instance.pk:
                    taken = taken.exclude(pk=self.instance.pk)
                if owner is not None and taken.exists():
                    raise forms.ValidationError("This company already has a collection with this name.")
                return name

        return Form


class KnowledgeBaseForm(forms.ModelForm):
    """The model a company's documents and questions are embedded with; saving starts a switch."""

    embedding_model = forms.ChoiceField(
        label="Embedding model",
        help_text="English-only documents and questions: all-MiniLM-L6-v2. Questions in other languages "
                  "(Russian, Spanish, German, French, Portuguese...): multilingual-e5-small. Changing it "
                  "re-embeds every document in the background; answers keep working and change over at once "
                  "when it is done.")

    class Meta:
        model = KnowledgeBase
        fields = ["embedding_model"]

    def __init__(self, *args, **kwargs):
        from rag.embeddings import model_choices

        super().__init__(*args, **kwargs)
        self.fields["embedding_model"].choices = model_choices()
        if self.instance.pk and self.instance.next_embedding_model:
            self.initial["embedding_model"] = self.instance.next_embedding_model


@admin.register(KnowledgeBase)
class KnowledgeBaseAdmin(CompanyScopedAdmin):
    form = KnowledgeBaseForm
    list_display = ("__str__", "embedding_model", "switch_status")
    readonly_fields = ("switch_status",)

    def get_fields(self, request, obj=None):
        return ["embedding_model", "switch_status"]

    def has_add_permission(self, request):
        return False  # every company has one, created with the company

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="Switch")
    def switch_status(self, obj):
        if obj.next_embedding_model:
            return f"Re-embedding for {obj.next_embedding_model}: {obj.switch_done:,} of {obj.switch_total:,} chunks"
        if obj.switch_error:
            return f"Stopped: {obj.switch_error}"
        return "—"

    def save_model(self, request, obj, form, change):
        from rag.knowledge_base import knowledge_base_model_set

        chosen = form.cleaned_data["embedding_model"]
        current = KnowledgeBase.objects.get(pk=obj.pk)
        try:
            kb = knowledge_base_model_set(company=current.company, model=chosen)
        except ServiceError as exc:
            messages.error(request, exc.message)
            return
        if kb.next_embedding_model:
            messages.info(request, f"Switching to {chosen}: {kb.switch_total:,} chunks are re-embedded in the "
                                   "background; answers use the current model until it is done.")


class SourceForm(forms.ModelForm):
    """A source's settings; saved through ``rag.sources`` (``source_create`` / ``source_update``)."""

    url = forms.URLField(max_length=2000, assume_scheme="https", label="URL",
                         help_text="Website: the start URL. Sitemap: the sitemap.xml (or index). Single URL: the page.")
    sync_now = forms.BooleanField(required=False, initial=True, label="Sync now",
                                  help_text="Queue a run as soon as it is saved.")

    class Meta:
        model = Source
        fields = ["company", *SOURCE_FIELDS]

    def clean(self):
        cleaned = super().clean()
        values = {name: cleaned[name] for name in SOURCE_FIELDS if name in cleaned}
        try:
            sources.source_clean(None, values)
        except ServiceError as exc:
            raise forms.ValidationError(f"{exc.message} ({exc.code})") from None
        return cleaned


class SyncRunInline(admin.TabularInline):
    model = SyncRun
    extra = 0
    max_num = 0
    can_delete = False
    ordering = ("-created_at", "-id")
    fields = readonly_fields = ("created_at", "trigger", "status", "progress", "added", "changed", "removed",
                                "failed", "unchanged", "bytes_received", "alerted")
    show_change_link = True

    @admin.display(description="Progress")
    def progress(self, obj):
        return f"{obj.pages_done} of {obj.pages_total} pages"

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Source)
class SourceAdmin(CompanyScopedAdmin):
    """Websites, sitemaps and single URLs kept in sync (docs/knowledge-base.md); runs are listed below."""

    form = SourceForm
    list_display = ("name", "kind", "url", "schedule", "last_run", "last_synced_at")
    list_filter = ("kind", "schedule")
    search_fields = ("name", "url")
    actions = ["export_csv", "sync_now_action"]
    inlines = [SyncRunInline]
    readonly_fields = ("last_synced_at", "last_run")

    def get_fields(self, request, obj=None):
        fields = [*SOURCE_FIELDS] + (["sync_now"] if obj is None else ["last_run", "last_synced_at"])
        return (["company"] if is_platform_staff(request.user) and obj is None else []) + fields

    def get_inlines(self, request, obj):
        return [SyncRunInline] if obj is not None else []

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("collection")

    def changelist_view(self, request, extra_context=None):
        extra_context = dict(extra_context or {})
        running = SyncRun.objects.filter(source__in=self.get_queryset(request),
                                         status__in=[SyncRun.Status.QUEUED, SyncRun.Status.RUNNING]).exists()
        extra_context["auto_refresh_seconds"] = 5 if running else None
        return super().changelist_view(request, extra_context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = dict(extra_context or {})
        extra_context["auto_refresh_seconds"] = 5 if SyncRun.objects.filter(
            source_id=object_id if str(object_id).isdigit() else 0,
            status__in=[SyncRun.Status.QUEUED, SyncRun.Status.RUNNING]).exists() and request.method == "GET" \
            else None
        return super().change_view(request, object_id, form_url, extra_context)

    @admin.display(description="Last run")
    def last_run(self, obj):
        run = obj.runs.order_by("-created_at", "-id").first()
        if run is None:
            return "never"
        if run.status in (SyncRun.Status.QUEUED, SyncRun.Status.RUNNING):
            return format_html('<span class="doc-status processing">{}: {} of {} pages</span>',
                               run.get_status_display(), run.pages_done, run.pages_total)
        if run.status == SyncRun.Status.FAILED:
            return format_html('<span class="doc-status failed">Failed: {}</span>', run.error[:160])
        return (f"{run.added} added, {run.changed} changed, {run.removed} removed, {run.failed} failed, "
                f"{run.unchanged} unchanged")

    def save_form(self, request, form, change):
        return form.save(commit=False)

    def save_model(self, request, obj, form, change):
        values = {name: form.cleaned_data[name] for name in SOURCE_FIELDS if name in form.cleaned_data}
        try:
            if change:
                sources.source_update(company=obj.company, source_id=obj.pk, **values)
            else:
                company = obj.company if is_platform_staff(request.user) else current_company(request)
                created = sources.source_create(company=company, sync_now=form.cleaned_data.get("sync_now", False),
                                                **values)
                obj.pk, obj.id, obj.company = created.pk, created.id, company
                if form.cleaned_data.get("sync_now"):
                    messages.info(request, f"“{created}” is being synced; its runs are listed on its page.")
        except ServiceError as exc:
            messages.error(request, f"{exc.message} ({exc.code})")

    def save_related(self, request, form, formsets, change):
        pass  # no many-to-many fields; the runs inline is read-only

    def delete_model(self, request, obj):
        sources.source_delete(company=obj.company, source_id=obj.pk)

    def delete_queryset(self, request, queryset):
        for source in queryset:
            sources.source_delete(company=source.company, source_id=source.pk)

    @admin.action(description="Sync selected sources now", permissions=["change"])
    def sync_now_action(self, request, queryset):
        for source in queryset:
            sources.source_sync_start(company=source.company, source_id=source.pk)
        messages.success(request, f"{queryset.count()} source(s) queued for a sync run.")


@admin.register(SyncRun)
class SyncRunAdmin(CompanyScopedAdmin):
    """What each run found: added, changed, removed, failed, unchanged; failures with their codes."""

    list_display = ("source", "status", "trigger", "progress", "added", "changed", "removed", "failed", "unchanged",
                    "bytes_received", "alerted", "created_at", "finished_at")
    list_filter = ("status", "source", "alerted")
    fields = readonly_fields = ("source", "status", "trigger", "progress", "added", "changed", "removed", "failed",
                                "unchanged", "bytes_received", "failure_list", "error", "alerted", "created_at",
                                "started_at", "finished_at")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("source")

    def changelist_view(self, request, extra_context=None):
        extra_context = dict(extra_context or {})
        extra_context["auto_refresh_seconds"] = 5 if self.get_queryset(request).filter(
            status__in=[SyncRun.Status.QUEUED, SyncRun.Status.RUNNING]).exists() else None
        return super().changelist_view(request, extra_context)

    @admin.display(description="Progress")
    def progress(self, obj):
        if obj.status in (SyncRun.Status.QUEUED, SyncRun.Status.RUNNING):
            return format_html('{} of {} pages <progress max="{}" value="{}"></progress>', obj.pages_done,
                               obj.pages_total, max(obj.pages_total, 1), obj.pages_done)
        return f"{obj.pages_done} pages"

    @admin.display(description="Failed pages")
    def failure_list(self, obj):
        if not obj.failures:
            return "—"
        return format_html_join("", "<div>{} — {} ({})</div>",
                                ((f["url"], f["message"], f["code"]) for f in obj.failures))

    def has_add_permission(self, request, *args):
        return False

    def has_change_permission(self, request, obj=None):
        return False

from rag import admin_versions  # noqa: E402,F401  versions and golden questions (rag/admin_versions.py)
