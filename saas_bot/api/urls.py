"""URLs of API v1 (``/api/v1/...``, no trailing slashes), the OpenAPI schema and Swagger UI."""
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import SimpleRouter

from saas_bot.api import views
from saas_bot.api.exceptions import api_not_found

router = SimpleRouter(trailing_slash=False)
router.register("bots", views.BotViewSet, basename="bot")
router.register("documents", views.DocumentViewSet, basename="document")
router.register("collections", views.CollectionViewSet, basename="collection")
router.register("sources", views.SourceViewSet, basename="source")
router.register("sync-runs", views.SyncRunViewSet, basename="sync-run")
router.register("conversations", views.ConversationViewSet, basename="conversation")
router.register("messages", views.MessageViewSet, basename="message")
router.register("versions", views.VersionViewSet, basename="version")
router.register("golden-questions", views.GoldenQuestionViewSet, basename="golden-question")

v1 = [
    *router.urls,
    path("usage", views.UsageViewSet.as_view({"get": "current"}), name="usage-current"),
    path("usage/daily", views.UsageViewSet.as_view({"get": "daily"}), name="usage-daily"),
    path("usage/events", views.UsageEventViewSet.as_view({"get": "list"}), name="usage-events"),
    path("subscription", views.SubscriptionViewSet.as_view({"get": "current"}), name="subscription"),
    path("knowledge-base", views.KnowledgeBaseViewSet.as_view({"get": "current", "patch": "partial_update"}),
         name="knowledge-base"),
]

urlpatterns = [
    path("v1/", include((v1, "api"), namespace="v1")),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    re_path(r"^.*$", api_not_found),
]
