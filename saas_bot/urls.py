from django.contrib import admin
from django.urls import include, path

from bots.views import telegram_webhook
from saas_bot.views import healthz_view, landing_view
from tenants.views import invitation_accept_view

urlpatterns = [
    path("", landing_view, name="landing"),
    path("healthz", healthz_view, name="healthz"),
    # Insight pages (playground, usage, knowledge gaps) live under /admin/ and must come before the admin site.
    path("admin/", include("saas_bot.insights.urls")),
    path("admin/", admin.site.urls),
    # setWebhook registers the URL with the slash; without it we answer the same (Telegram does not
    # follow redirects, so APPEND_SLASH's 301 would lose updates).
    path("telegram/webhook/<str:public_id>/", telegram_webhook, name="telegram-webhook"),
    path("telegram/webhook/<str:public_id>", telegram_webhook, name="telegram-webhook-no-slash"),
    # The one-time link of a team invitation (outside /admin/: the invitee is not signed in yet).
    path("invitations/<str:token>/", invitation_accept_view, name="invitation-accept"),
    path("api/", include("saas_bot.api.urls")),
]

