"""API keys in the admin: company owners/admins (and platform staff) create and revoke them.

Scoped with ``tenants.access``: a company member sees and creates keys of their current company only;
platform staff see every company's keys. The key is shown once, in a message, after creation.
"""
from django.contrib import admin
from rest_framework_api_key.admin import APIKeyModelAdmin
from rest_framework_api_key.models import APIKey

from saas_bot.api.models import ApiKey
from tenants import access

# The library's own unscoped model is not used by our authentication: hide it.
if admin.site.is_registered(APIKey):
    admin.site.unregister(APIKey)


@admin.register(ApiKey)
class ApiKeyAdmin(APIKeyModelAdmin):
    list_display = ("prefix", "name", "company", "created", "created_by", "last_used_at", "expiry_date",
                    "_has_expired", "revoked")
    list_filter = ("revoked", "created")
    search_fields = ("name", "prefix")

    def _staff(self, request) -> bool:
        return access.is_platform_staff(request.user)

    def _may_edit(self, request) -> bool:
        return self._staff(request) or access.can_edit(request.user, access.current_company(request))

    def get_queryset(self, request):
        queryset = super().get_queryset(request).select_related("company", "created_by")
        if self._staff(request):
            return queryset
        company = access.current_company(request)
        return queryset.for_company(company) if company is not None else queryset.none()

    def get_fields(self, request, obj=None):
        fields = ["name", "expiry_date", "revoked"]
        if self._staff(request):
            fields.insert(0, "company")
        return fields

    def get_readonly_fields(self, request, obj=None):
        fields = tuple(super().get_readonly_fields(request, obj))
        if obj is not None:
            fields += ("company",) if self._staff(request) else ()
        return tuple(f for f in fields if f != "prefix")

    def has_module_permission(self, request):
        return self._staff(request) or access.current_company(request) is not None

    def has_view_permission(self, request, obj=None):
        return self.has_module_permission(request)

    def has_add_permission(self, request):
        return self._may_edit(request)

    def has_change_permission(self, request, obj=None):
        return self._may_edit(request)

    def has_delete_permission(self, request, obj=None):
        return self._may_edit(request)

    def save_model(self, request, obj, form=None, change=False):
        if not change:
            if not self._staff(request) or obj.company_id is None:
                obj.company = access.current_company(request)
            obj.created_by = request.user
        super().save_model(request, obj, form, change)
