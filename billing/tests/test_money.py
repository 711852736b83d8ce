"""Money with its currency and counts with separators (billing/money.py) where the admin shows them."""
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.urls import reverse

from billing.models import ModelPrice, Plan
from billing.money import cost_currency, count_format, money_format


def test_money_and_counts_read_as_people_write_them():
    assert money_format(Decimal("1234.5"), "EUR") == "€1,234.50"
    assert money_format(0, "usd", precise=True) == "$0.00"
    assert money_format(Decimal("0.000123"), "USD", precise=True) == "$0.000123"  # never "0.00" when it is not
    assert money_format(Decimal("1500"), "JPY") == "¥1,500"
    assert money_format(None, "EUR") == "—" and money_format("not a number", "EUR") == "—"
    assert count_format(4_000_000) == "4,000,000" and count_format(None) == "—"


@pytest.mark.django_db
def test_cost_currency_is_that_of_the_model_prices():
    cache.clear()
    assert cost_currency() == "USD"
    ModelPrice.objects.create(model="gpt-x", prompt_per_1k=Decimal("0.15"), completion_per_1k=Decimal("0.6"),
                              currency="EUR")
    cache.clear()
    assert cost_currency() == "EUR"
    cache.clear()


@pytest.mark.django_db
def test_usage_page_and_plan_list_show_currency_and_separators(owner_client, company, client):
    cache.clear()
    page = owner_client.get(reverse("admin-usage")).content.decode()
    assert 'Cost this period: <span id="usage-cost">$0.00</span> (0 credits)' in page
    assert "<td>1,000</td>" in page  # the plan's 1,000 messages per period
    Plan.objects.create(code="pro", name="Pro", price=Decimal("1290"), currency="EUR")
    from django.contrib.auth.models import User

    User.objects.create_superuser("root", "root@example.com", "Tulip-Harbor-93")
    client.login(username="root", password="Tulip-Harbor-93")
    assert "€1,290.00" in client.get("/admin/billing/plan/").content.decode()
