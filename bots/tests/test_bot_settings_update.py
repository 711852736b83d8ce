"""bots.lifecycle.bot_settings_update: settings and collections, nothing else, same company only."""
import pytest

from bots.lifecycle import bot_settings_update
from rag.models import Collection
from saas_bot.errors import NotFound, ValidationFailed

pytestmark = pytest.mark.django_db


def test_updates_settings_and_collections(bot):
    billing = Collection.objects.create(company=bot.company, name="Billing")
    bot_settings_update(bot=bot, changes={"name": "Helpdesk", "language": "de"}, collections=[billing])
    bot.refresh_from_db()
    assert (bot.name, bot.language) == ("Helpdesk", "de")
    assert list(bot.collections.all()) == [billing]
    bot_settings_update(bot=bot, changes={}, collections=[])
    assert not bot.collections.exists()


def test_refuses_other_fields_and_other_companies_collections(bot, make_company):
    with pytest.raises(ValidationFailed) as exc:
        bot_settings_update(bot=bot, changes={"token_encrypted": "x"})
    assert exc.value.code == "bot_setting_unknown"
    foreign = Collection.objects.create(company=make_company("beta"), name="Secret")
    with pytest.raises(NotFound):
        bot_settings_update(bot=bot, changes={"name": "x"}, collections=[foreign])
    bot.refresh_from_db()
    assert bot.name != "x" and not bot.collections.exists()
