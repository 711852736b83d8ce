"""The project's URLs plus stand-ins for the pages another module adds (usage, playground, knowledge gaps)."""
from django.http import HttpResponse
from django.urls import path

from saas_bot.urls import urlpatterns as project_urlpatterns


def _page(request, **kwargs):
    return HttpResponse("stand-in")


urlpatterns = [
    path("admin/usage/", _page, name="admin-usage"),
    path("admin/playground/<int:bot_id>/", _page, name="admin-playground"),
    path("admin/knowledge-gaps/", _page, name="admin-knowledge-gaps"),
    *project_urlpatterns,
]
