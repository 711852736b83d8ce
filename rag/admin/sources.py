"""Sources (websites, sitemaps, single URLs kept in sync) and their sync runs for company admins;
saved, synced and deleted through ``rag.sources`` (docs/knowledge-base.md)."""
from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.utils.html import format_html, format_html_join

from rag import sources
from rag.models import Source, SyncRun
from rag.sources import SOURCE_FIELDS
from saas_bot.admin_save import RefusalShownAdmin, SaveRefused, with_save_refusal
from saas_bot.errors import ServiceError
from saas_bot.ids import parse_id
from tenants.access import current_company, is_platform_staff
from tenants.admin_scoping import CompanyScopedAdmin


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
class SourceAdmin(RefusalShownAdmin, CompanyScopedAdmin):
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

    def get_form(self, request, obj=None, change=False, **kwargs):
        return with_save_refusal(request, super().get_form(request, obj, change=change, **kwargs))

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
            source_id=parse_id(object_id) or 0,
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
        except ServiceError as exc:  # e.g. another company's collection: shown on the form, nothing saved
            raise SaveRefused([f"{exc.message} ({exc.code})"]) from None

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
