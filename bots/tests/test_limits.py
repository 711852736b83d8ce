"""The message limit on the Telegram path: the plan's limit message, nothing metered."""
import pytest

from billing.models import UsageEvent
from bots.models import Message, TelegramUpdate
from bots.updates import update_process
from saas_bot.pytest_plugin import make_update

pytestmark = pytest.mark.django_db


@pytest.fixture
def tiny(make_company, telegram):
    from bots.services import bot_connect

    company = make_company("tiny", max_messages_per_period=1, limit_message="Limit reached, sorry!")
    telegram.add_bot("7200000001:AAFlimitsTestToken000000000000000001", username="tiny_bot")
    return bot_connect(company=company, token="7200000001:AAFlimitsTestToken000000000000000001",
                       register_webhook=False)


def test_over_the_limit_the_plan_message_is_sent_and_nothing_is_metered(tiny, telegram):
    rows = []
    for text in ("first question", "second question"):
        update = make_update(text)
        rows.append(TelegramUpdate.objects.create(company=tiny.company, bot=tiny, update_id=update["update_id"],
                                                  payload=update))
    for row in rows:
        assert update_process(update_pk=row.id) == "done"
    texts = [m["text"] for m in telegram.sent_messages()]
    assert texts[1] == "Limit reached, sorry!"
    assert UsageEvent.objects.count() == 1
    assert list(Message.objects.order_by("id").values_list("status", flat=True))[1] == "limit_reached"
