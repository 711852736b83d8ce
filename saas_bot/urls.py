from django.contrib import admin
from django.urls import path

from bots.views import telegram_webhook

urlpatterns = [
    path("admin/", admin.site.urls),
    path("telegram/webhook/<str:public_id>/", telegram_webhook, name="telegram-webhook"),
]
