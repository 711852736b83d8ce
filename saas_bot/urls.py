from django.contrib import admin
from django.urls import include, path

from bots.views import telegram_webhook

urlpatterns = [
    path("admin/", admin.site.urls),
    # setWebhook registers the URL with the slash; without it we answer the same (Telegram does not
    # follow redirects, so APPEND_SLASH's 301 would lose updates).
    path("telegram/webhook/<str:public_id>/", telegram_webhook, name="telegram-webhook"),
    path("telegram/webhook/<str:public_id>", telegram_webhook, name="telegram-webhook-no-slash"),
    path("api/", include("saas_bot.api.urls")),
]
