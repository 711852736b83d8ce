from django.contrib import admin
from django.urls import path

from bots.views import telegram_webhook

urlpatterns = [
    path("admin/", admin.site.urls),
    # setWebhook registers the URL with the slash; without it we answer the same (Telegram does not
    # follow redirects, so APPEND_SLASH's 301 would lose updates).
    path("telegram/webhook/<str:public_id>/", telegram_webhook, name="telegram-webhook"),
    path("telegram/webhook/<str:public_id>", telegram_webhook, name="telegram-webhook-no-slash"),
]

# Issue 5: the one-time link of a team invitation (outside /admin/, the invitee is not signed in yet).
from tenants.views import invitation_accept_view  # noqa: E402

urlpatterns += [path("invitations/<str:token>/", invitation_accept_view, name="invitation-accept")]
