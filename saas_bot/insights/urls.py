"""URLs of the admin's insight pages, mounted under /admin/ before the admin site (saas_bot/urls.py)."""
from django.contrib import admin
from django.urls import path

from saas_bot.insights import views

urlpatterns = [
    path("playground/", admin.site.admin_view(views.playground_index), name="admin-playground-index"),
    path("playground/<int:bot_id>/", admin.site.admin_view(views.playground), name="admin-playground"),
    path("usage/", admin.site.admin_view(views.usage_dashboard), name="admin-usage"),
    path("usage/export.csv", admin.site.admin_view(views.usage_export), name="admin-usage-export"),
    path("knowledge-gaps/", admin.site.admin_view(views.knowledge_gaps_view), name="admin-knowledge-gaps"),
    path("insights/plotly.min.js", admin.site.admin_view(views.plotly_js, cacheable=True), name="admin-plotly-js"),
]
