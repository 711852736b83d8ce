"""API keys in the admin: company owners/admins (and platform staff) create and revoke them.

Scoped with ``tenants.access``: a company member sees and creates keys of their current company only;
platform staff see every company's keys. The key is shown once, in a message, after creation.
"""
from django.contrib import admin
from rest_framework_api_key.admin import APIKeyModelAdmin
from rest_framework_api_key.models import APIKey

from saas_bot.api.models import ApiKey
from tenants import access
from tenants.admin_scoping import CompanyScopedAdmin

# The library's own unscoped model is not used by our authentication: hide it.
if admin.site.is_registered(APIKey):
    admin.site.unregister(APIKey)


@admin.register(ApiKey)
class ApiKeyAdmin(CompanyScopedAdmin, APIKeyModelAdmin):
    """Keys of the current company (all companies for staff); owners/admins create and revoke, viewers read.

    The scoping (queryset, company from the session, role-based rights, 404 for other companies' keys) is
    ``CompanyScopedAdmin``'s; the key generation and its show-once message are the library's.
    """

    list_display = ("prefix", "name", "created", "created_by", "last_used_at", "expiry_date", "_has_expired",
                    "revoked")
    list_filter = ("revoked", "created")
    search_fields = ("name", "prefix")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("company", "created_by")

    def get_fields(self, request, obj=None):
        fields = ["company", "name", "expiry_date", "revoked"]
        return [f for f in fields if f != "company" or access.is_platform_staff(request.user)]

    def get_readonly_fields(self, request, obj=None):
        fields = tuple(super().get_readonly_fields(request, obj))
        if obj is not None and access.is_platform_staff(request.user):
            fields += ("company",)
        return tuple(f for f in fields if f != "prefix")

    def save_model(self, request, obj, form=None, change=False):
        if not change:
            obj.created_by = request.user
            if obj.company_id is None:
                obj.company = access.current_company(request)
        super().save_model(request, obj, form, change)
