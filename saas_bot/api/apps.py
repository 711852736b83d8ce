from django.apps import AppConfig


class ApiConfig(AppConfig):
    """REST API v1 (docs/api.md): keys, endpoints, idempotency, throttling, error shape."""

    name = "saas_bot.api"
    label = "api"
    verbose_name = "REST API"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from saas_bot.api import schema  # noqa: F401  registers the drf-spectacular extension
