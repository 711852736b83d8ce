def telegram_webhook(request, public_id): pass
