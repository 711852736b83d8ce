"""bots.selectors: a bot found by what a person types (manage.py ask --bot), within its company."""
import pytest

from bots.models import Bot
from bots.selectors import bot_count, bot_find, bot_names
from saas_bot.errors import NotFound

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_bots(make_company):
    acme, globex = make_company("acme"), make_company("globex")
    mine = Bot.objects.create(company=acme, name="Helpdesk", username="acme_help_bot", telegram_id=7100000101)
    theirs = Bot.objects.create(company=globex, name="Sales", username="globex_sales_bot", telegram_id=7100000102)
    return acme, globex, mine, theirs


def test_found_by_id_username_at_username_and_public_id(two_bots):
    acme, _, mine, _ = two_bots
    for ref in (str(mine.id), f" {mine.id} ", "acme_help_bot", "@ACME_help_bot", str(mine.public_id)):
        assert bot_find(ref=ref, company=acme) == mine, ref


def test_another_companys_bot_is_missing_like_an_unknown_one(two_bots):
    acme, globex, _, theirs = two_bots
    for ref in (str(theirs.id), "@globex_sales_bot", str(theirs.public_id), "nobody_bot"):
        with pytest.raises(NotFound) as caught:
            bot_find(ref=ref, company=acme)
        assert caught.value.code == "bot_not_found"
    assert bot_find(ref=str(theirs.id)) == theirs  # no company given: the operator's command sees all


@pytest.mark.parametrize("ref", ["¹", "٣", "9" * 30, "-1"])
def test_an_id_that_is_not_plain_digits_is_not_found_not_a_crash(two_bots, ref):
    acme, *_ = two_bots
    with pytest.raises(NotFound):
        bot_find(ref=ref, company=acme)


def test_names_and_count_are_the_companys_own(two_bots):
    acme, globex, mine, _ = two_bots
    Bot.objects.create(company=acme, name="Unnamed", telegram_id=7100000103)
    assert list(bot_names(company=acme).values()) == ["@acme_help_bot", "Unnamed"]
    assert bot_count(acme) == 2 and bot_count(globex) == 1
