from django.apps import AppConfig


class BotsConfig(AppConfig):
    name = "bots"
    verbose_name = "Bots and conversations"

    def ready(self) -> None:
        from billing.selectors import holding_counter_register
        from bots.selectors import bot_count

        holding_counter_register(limit="max_bots", counter=bot_count)
