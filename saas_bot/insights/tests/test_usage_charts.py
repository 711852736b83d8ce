"""Usage charts fit the data's days, and a metric without data says so instead of drawing an empty axis."""
import datetime as dt

import pytest
from django.urls import reverse

from saas_bot.insights.views import CHART_MIN_DAYS, chart_days

D = dt.date


def test_chart_days_fit_the_data_and_keep_a_week_in_view():
    period = (D(2026, 12, 1), D(2026, 12, 31))
    one_day = [{"day": D(2026, 12, 1)}]
    assert chart_days(one_day, *period) == (D(2026, 12, 1), D(2026, 12, 7))  # not the whole month
    late = [{"day": D(2026, 12, 20)}]
    assert chart_days(late, *period) == (D(2026, 12, 14), D(2026, 12, 20))
    spread = [{"day": D(2026, 12, 3)}, {"day": D(2026, 12, 25)}]
    assert chart_days(spread, *period) == (D(2026, 12, 3), D(2026, 12, 25))
    short_period = (D(2026, 12, 1), D(2026, 12, 3))
    assert chart_days(one_day, *short_period) == (D(2026, 12, 1), D(2026, 12, 3))
    assert CHART_MIN_DAYS == 7


@pytest.mark.django_db
def test_empty_metrics_say_so_and_data_gets_a_chart(owner_client, bot, django_capture_on_commit_callbacks):
    page = owner_client.get(reverse("admin-usage")).content.decode()
    assert "No messages yet this period" in page and "No chat-model tokens this period" in page
    assert "Plotly.newPlot" not in page

    from bots.models import Conversation
    from bots.answers import bot_ask

    from saas_bot.testing.pytest_plugin import DEMO_DIR, ingest_folder

    ingest_folder(bot.company, DEMO_DIR / "kb")
    with django_capture_on_commit_callbacks(execute=True):  # the usage event is recorded after commit
        bot_ask(bot=bot, question="How long do sharing links last?", channel=Conversation.Channel.PLAYGROUND)
    page = owner_client.get(reverse("admin-usage")).content.decode()
    assert "No messages yet this period" not in page and "Plotly.newPlot" in page
    assert '"tickformat":",d"' in page.replace(" ", "")
    assert "No chat-model tokens this period" in page  # extractive answers: still no tokens
