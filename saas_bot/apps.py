"""App configs of the project package."""
from django.contrib.admin.apps import AdminConfig


class SaasBotAdminConfig(AdminConfig):
    """``django.contrib.admin`` with our site (grouped index): Django docs, "Overriding the default admin site"."""

    default_site = "saas_bot.admin_site.SaasBotAdminSite"
