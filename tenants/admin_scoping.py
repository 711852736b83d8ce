"""The one place the Django admin is scoped to a company (issue 5, item 1).

Every company-owned model's ModelAdmin extends :class:`CompanyScopedAdmin` (inlines:
:class:`CompanyScopedInline`); every platform-only model's extends :class:`StaffOnlyAdmin`.

Who may do what (``tenants.access``):

- Platform staff (superusers, the "Platform staff" group) see and change everything, every company.
- Company members (``Membership``: owner, admin, viewer) see only their current company's rows.
  Owners and admins change them; viewers only read. Their rights come from the membership role, not
  from Django's model permissions: members need no ``auth.Permission`` rows assigned by hand (the
  ``has_*_permission`` methods below answer from the role). ``team_admin = True`` on a ModelAdmin
  narrows changes to owners (the Team pages).

What is scoped: the changelist queryset (and so search, bulk actions, exports and autocomplete, which
all start from ``get_queryset``), objects opened by URL (another company's id is a 404, like a
missing one), foreign-key and many-to-many choices, list filters (a company filter for staff only;
related filters list only this company's rows), inline forms, and ``save_model`` (the company comes
from the member's current company, never from the form).
"""
from __future__ import annotations

from decimal import Decimal

from django.contrib import admin
from django.contrib.admin import RelatedOnlyFieldListFilter
from django.contrib.admin.utils import NotRelationField
from django.core.exceptions import FieldDoesNotExist
from django.http import Http404, HttpResponse
from django.utils.html import strip_tags
from django.utils.text import capfirst

from saas_bot.spreadsheets import SafeWriter
from tenants.access import current_company, is_platform_staff, role_in
from tenants.models import Company, Membership


def company_field_of(model) -> str | None:
    """"company" if ``model`` has a foreign key named company to tenants.Company, else None."""
    try:
        field = model._meta.get_field("company")
    except FieldDoesNotExist:
        return None
    return "company" if getattr(field, "related_model", None) is Company else None


def member_role(request) -> str | None:
    """The signed-in member's role in their current company (None for staff-only users and strangers)."""
    if not hasattr(request, "_member_role"):
        company = current_company(request)
        request._member_role = role_in(request.user, company) if company else None
    return request._member_role


def scope_to_user(request, queryset):
    """``queryset`` limited to what the signed-in user may see: everything for platform staff, the rows of
    their current company for members, nothing for anyone else (also for admin views that are not
    ModelAdmins, e.g. the playground and the usage dashboard)."""
    if is_platform_staff(request.user):
        return queryset
    company = current_company(request)
    field = company_field_of(queryset.model)
    if company is None or field is None:
        return queryset.none()
    return queryset.filter(**{field: company})


class _ScopingMixin:
    """Shared by the ModelAdmin and the inline: querysets and choices limited to the current company."""

    # Roles that may add/change/delete here (viewers never); the Team pages narrow this to owners.
    editor_roles: tuple[str, ...] = (Membership.Role.OWNER, Membership.Role.ADMIN)

    def scoped(self, request, queryset):
        """``queryset`` limited to what the user may see (``scope_to_user``)."""
        return scope_to_user(request, queryset)

    def get_queryset(self, request):
        return self.scoped(request, super().get_queryset(request))

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        formfield = super().formfield_for_foreignkey(db_field, request, **kwargs)
        return self._scope_choices(formfield, request)

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        formfield = super().formfield_for_manytomany(db_field, request, **kwargs)
        return self._scope_choices(formfield, request)

    def _scope_choices(self, formfield, request):
        queryset = getattr(formfield, "queryset", None)
        if queryset is None:
            return formfield
        if is_platform_staff(request.user):
            # Staff editing one company's object pick among that company's rows (any company when adding).
            company_id = getattr(request, "_scoping_company_id", None)
            if company_id and company_field_of(queryset.model):
                formfield.queryset = queryset.filter(company_id=company_id)
            return formfield
        if queryset.model is Company:
            company = current_company(request)
            formfield.queryset = queryset.filter(pk=getattr(company, "pk", None))
        elif company_field_of(queryset.model):
            formfield.queryset = self.scoped(request, queryset)
        return formfield

    def get_form(self, request, obj=None, change=False, **kwargs):
        request._scoping_company_id = getattr(obj, "company_id", None)
        return super().get_form(request, obj, change=change, **kwargs)

    def get_exclude(self, request, obj=None):
        exclude = list(super().get_exclude(request, obj) or [])
        if not is_platform_staff(request.user) and company_field_of(self.model):
            exclude.append("company")  # set from the current company, never from the form
        return exclude

    def get_fields(self, request, obj=None):
        fields = super().get_fields(request, obj)
        if not is_platform_staff(request.user):
            fields = [f for f in fields if f != "company"]
        return fields

    def get_readonly_fields(self, request, obj=None):
        readonly = list(super().get_readonly_fields(request, obj))
        if not is_platform_staff(request.user):
            readonly = [f for f in readonly if f != "company"]
        return readonly

    # Permissions: from the role, not from auth.Permission rows (see the module docstring).
    def _may_edit(self, request) -> bool:
        return is_platform_staff(request.user) or member_role(request) in self.editor_roles

    def has_module_permission(self, request):
        return is_platform_staff(request.user) or member_role(request) is not None

    def has_view_permission(self, request, obj=None):
        if is_platform_staff(request.user):
            return True
        return member_role(request) is not None and (obj is None or self._owned(request, obj))

    def has_add_permission(self, request, *args):
        return self._may_edit(request)

    def has_change_permission(self, request, obj=None):
        return self._may_edit(request) and (obj is None or self._owned(request, obj))

    def has_delete_permission(self, request, obj=None):
        return self._may_edit(request) and (obj is None or self._owned(request, obj))

    def _owned(self, request, obj) -> bool:
        if is_platform_staff(request.user):
            return True
        company = current_company(request)
        return company is not None and getattr(obj, "company_id", None) == company.pk


class CompanyScopedAdmin(_ScopingMixin, admin.ModelAdmin):
    """Base ModelAdmin of every company-owned model (module docstring: what is scoped and how)."""

    actions = ["export_csv"]

    def get_list_filter(self, request):
        filters = []
        for item in super().get_list_filter(request):
            if isinstance(item, str) and not is_platform_staff(request.user) and self._is_relation(item):
                item = (item, RelatedOnlyFieldListFilter)  # choices from this company's rows only
            filters.append(item)
        if is_platform_staff(request.user) and company_field_of(self.model) and "company" not in filters:
            filters.insert(0, ("company", RelatedOnlyFieldListFilter))
        return filters

    def _is_relation(self, path: str) -> bool:
        from django.contrib.admin.utils import get_fields_from_path

        try:
            field = get_fields_from_path(self.model, path)[-1]
        except (FieldDoesNotExist, NotRelationField):
            return False
        return field.is_relation and not field.auto_created

    def get_list_display(self, request):
        display = list(super().get_list_display(request))
        if is_platform_staff(request.user) and company_field_of(self.model) and "company" not in display:
            display.append("company")
        return display

    def get_object(self, request, object_id, from_field=None):
        """Another company's object, like a missing one, is a 404 (not Django's redirect to the index)."""
        obj = super().get_object(request, object_id, from_field)
        if obj is None:
            raise Http404(f"No {self.model._meta.verbose_name} with this id.")
        return obj

    def save_model(self, request, obj, form, change):
        if not is_platform_staff(request.user) and company_field_of(self.model):
            obj.company = current_company(request)
        super().save_model(request, obj, form, change)

    def save_formset(self, request, form, formset, change):
        """New inline rows belong to the parent's company."""
        instances = formset.save(commit=False)
        parent_company = getattr(form.instance, "company_id", None)
        for instance in instances:
            if company_field_of(type(instance)) and parent_company:
                instance.company_id = parent_company
            instance.save()
        for instance in formset.deleted_objects:
            instance.delete()
        formset.save_m2m()

    @admin.action(description="Export selected rows as CSV")
    def export_csv(self, request, queryset):
        """The selected rows (already limited to the user's company) with the list's columns."""
        from django.contrib.admin.utils import label_for_field, lookup_field

        columns = [c for c in self.get_list_display(request) if c != "action_checkbox"]
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{self.model._meta.model_name}.csv"'
        writer = SafeWriter(response)  # end users' text never becomes a formula (OWASP CSV injection)
        writer.writerow([capfirst(str(label_for_field(c, self.model, self))) for c in columns])
        for obj in queryset:
            values = (lookup_field(c, obj, self)[2] for c in columns)
            writer.writerow([("yes" if value else "no") if isinstance(value, bool)
                             else value if value is None or isinstance(value, (int, float, Decimal))
                             else strip_tags(str(value)) for value in values])
        return response


class CompanyScopedInline(_ScopingMixin):
    """Mixin for inlines of company-owned models: ``class X(CompanyScopedInline, admin.TabularInline)``."""


class StaffOnlyAdmin(admin.ModelAdmin):
    """Base ModelAdmin of platform-only models (companies, plans, subscriptions, the inbox, the ledger):
    platform staff have every right; company members do not see these pages at all."""

    def has_module_permission(self, request):
        return is_platform_staff(request.user)

    def has_view_permission(self, request, obj=None):
        return is_platform_staff(request.user)

    def has_add_permission(self, request, *args):
        return is_platform_staff(request.user)

    def has_change_permission(self, request, obj=None):
        return is_platform_staff(request.user)

    def has_delete_permission(self, request, obj=None):
        return is_platform_staff(request.user)

    def get_object(self, request, object_id, from_field=None):
        obj = super().get_object(request, object_id, from_field)
        if obj is None:
            raise Http404(f"No {self.model._meta.verbose_name} with this id.")
        return obj
