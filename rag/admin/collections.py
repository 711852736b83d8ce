"""Collections for company admins: named groups of documents a bot may be limited to."""
from __future__ import annotations

from django import forms
from django.contrib import admin

from rag.models import Collection
from tenants.access import current_company, is_platform_staff
from tenants.admin_scoping import CompanyScopedAdmin


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
