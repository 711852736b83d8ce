from django.apps import AppConfig


class InsightsConfig(AppConfig):
    """Admin pages beyond ModelAdmins: playground, usage dashboard, knowledge gaps (issue 5)."""

    name = "saas_bot.insights"
    label = "insights"
    verbose_name = "Insights"
