"""The admin site: the standard Django admin with an index grouped by what a company admin does.

Groups: Bots, Knowledge, Conversations, Usage, Team, Developers, and for platform staff Back office (anything
registered but not placed in a group lands there, so a new model is never hidden). Links to pages
that are not ModelAdmins (usage dashboard, playground, knowledge gaps) are added by URL name and only
when the URL exists.
"""
from __future__ import annotations

from django import forms
from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.urls import NoReverseMatch, reverse

from tenants.access import current_company, is_platform_staff, may_use_admin, memberships_of

# (group name, slug, [(app_label, model_name) ...], [(URL name, link text) ...])
INDEX_GROUPS = [
    ("Bots", "bots", [("bots", "bot"), ("bots", "chat"), ("bots", "telegramuser")], []),
    ("Knowledge", "knowledge", [("rag", "document"), ("rag", "collection"), ("rag", "source"), ("rag", "syncrun"),
                               ("rag", "knowledgebase"),
                               ("rag", "knowledgebaseversion"), ("rag", "goldenquestion")],
     [("admin-knowledge-gaps", "Knowledge gaps")]),
    ("Conversations", "conversations", [("bots", "conversation"), ("bots", "message")], []),
    ("Usage", "usage", [], [("admin-usage", "Usage dashboard")]),
    ("Team", "team", [("tenants", "membership"), ("tenants", "invitation")], []),
    ("Developers", "developers", [("api", "apikey")], [("api-docs", "REST API documentation")]),
    ("Back office", "backoffice", [("tenants", "company"), ("billing", "plan"), ("billing", "subscription"),
                                   ("bots", "telegramupdate"), ("billing", "usageevent"),
                                   ("billing", "limitalert"), ("billing", "modelprice")], []),
]


def reverse_or_none(name: str, *args) -> str | None:
    """``reverse(name, args)`` or None while the page is not installed."""
    try:
        return reverse(name, args=args)
    except NoReverseMatch:
        return None


class MemberAuthenticationForm(AdminAuthenticationForm):
    """The admin login: a company member signs in without "Staff status" (``tenants.access.may_use_admin``)."""

    error_messages = {
        **AdminAuthenticationForm.error_messages,
        "invalid_login": "Please enter the correct %(username)s and password of a company member or of platform "
                         "staff. Both fields may be case-sensitive.",
    }

    def confirm_login_allowed(self, user):
        if not user.is_active or not may_use_admin(user):
            raise forms.ValidationError(self.error_messages["invalid_login"], code="invalid_login",
                                        params={"username": self.username_field.verbose_name})


class SaasBotAdminSite(admin.AdminSite):
    site_header = "saas_bot administration"
    site_title = "saas_bot admin"
    index_title = "Your assistant bots"
    login_form = MemberAuthenticationForm
    site_url = "/"

    def has_permission(self, request):
        """Active platform staff and members of an active company (no "Staff status" needed, issue 16)."""
        return may_use_admin(request.user)

    def each_context(self, request):
        context = super().each_context(request)
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            context["platform_staff"] = is_platform_staff(user)
            context["current_company"] = current_company(request) if hasattr(request, "session") else None
            context["member_companies"] = [m.company for m in memberships_of(user)]
        return context

    def get_urls(self):
        from django.urls import path

        from tenants.views import company_switch_view

        return [path("switch-company/", self.admin_view(company_switch_view), name="switch-company"),
                *super().get_urls()]

    def get_app_list(self, request, app_label=None):
        """Grouped on the index (and the sidebar); per app on an app's own page."""
        app_list = super().get_app_list(request, app_label)
        if app_label is not None:
            return app_list
        models = {(app["app_label"], m["object_name"].lower()): m for app in app_list for m in app["models"]}
        may_link = is_platform_staff(request.user) or current_company(request) is not None
        groups, placed = [], set()
        for name, slug, members, links in INDEX_GROUPS:
            entries = []
            for key in members:
                if key in models:
                    entries.append(models[key])
                    placed.add(key)
            if slug == "backoffice":
                entries += [m for key, m in models.items() if key not in placed]
            for url_name, text in links:
                url = reverse_or_none(url_name) if may_link else None
                if url:
                    entries.append({"name": text, "object_name": url_name, "admin_url": url, "add_url": None,
                                    "view_only": True, "perms": {"view": True}, "model": None})
            if entries:
                groups.append({"name": name, "app_label": slug, "app_url": entries[0]["admin_url"],
                               "has_module_perms": True, "models": entries})
        return groups
