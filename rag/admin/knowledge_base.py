"""A company's knowledge base in the admin: its embedding model; saving starts a switch (re-embedding)."""
from __future__ import annotations

from django import forms
from django.contrib import admin, messages

from rag.models import KnowledgeBase
from saas_bot.admin_save import RefusalShownAdmin, SaveRefused, with_save_refusal
from saas_bot.errors import ServiceError
from tenants.admin_scoping import CompanyScopedAdmin


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
class KnowledgeBaseAdmin(RefusalShownAdmin, CompanyScopedAdmin):
    form = KnowledgeBaseForm
    list_display = ("__str__", "embedding_model", "switch_status")
    readonly_fields = ("switch_status",)

    def get_fields(self, request, obj=None):
        return ["embedding_model", "switch_status"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        return with_save_refusal(request, super().get_form(request, obj, change=change, **kwargs))

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
        except ServiceError as exc:  # shown beside the model, nothing changed
            raise SaveRefused.of(exc, field="embedding_model") from None
        if kb.next_embedding_model:
            messages.info(request, f"Switching to {chosen}: {kb.switch_total:,} chunks are re-embedded in the "
                                   "background; answers use the current model until it is done.")
