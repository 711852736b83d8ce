"""Money and counts as people read them: the currency's symbol, grouping separators (``$1,234.50``, ``€29.00``).

Formats follow Unicode CLDR through Babel for the deployment's ``LANGUAGE_CODE`` (``en-us``: ``$``, ``,``
for thousands, ``.`` for decimals). Plan prices show the currency's own decimals (2 for EUR/USD, 0 for JPY);
usage costs, which are fractions of a cent per message, show up to 6 decimals (``$0.000123``) so they
never read as zero when they are not.
"""
from __future__ import annotations

from decimal import Decimal, InvalidOperation
from functools import lru_cache

from babel.core import Locale, UnknownLocaleError
from babel.numbers import format_currency, format_decimal
from django.conf import settings
from django.utils.translation import to_locale

# Usage costs: at least 2 decimals, up to 6 (ModelPrice and UsageEvent.cost keep 6 decimal places).
PRECISE_PATTERN = "¤#,##0.00####"
# What usage costs are counted in when no ModelPrice says (ModelPrice.currency's default).
DEFAULT_COST_CURRENCY = "USD"
COST_CURRENCY_CACHE_KEY = "billing:cost_currency"
COST_CURRENCY_CACHE_SECONDS = 60


@lru_cache(maxsize=8)
def _locale(language_code: str) -> Locale:
    try:
        return Locale.parse(to_locale(language_code))
    except (UnknownLocaleError, ValueError):
        return Locale.parse("en_US")


def money_format(amount: Decimal | int | float | str | None, currency: str, *, precise: bool = False) -> str:
    """``amount`` of ``currency`` (ISO 4217 code, e.g. "EUR") for display: "€29.00", "$0.000123".

    Args:
        precise: up to 6 decimals (usage costs) instead of the currency's own (prices).

    Returns:
        The text; "—" when ``amount`` is None or not a number (a display never raises). An unknown code
        is shown before the number ("XTS 1.00"-style, as CLDR does).
    """
    if amount is None:
        return "—"
    try:
        value = Decimal(str(amount))
    except (InvalidOperation, ValueError):
        return "—"
    code = (currency or DEFAULT_COST_CURRENCY).upper()
    locale = _locale(settings.LANGUAGE_CODE)
    if precise:
        return format_currency(value, code, format=PRECISE_PATTERN, locale=locale, currency_digits=False)
    return format_currency(value, code, locale=locale)


def count_format(value: int | float | Decimal | None) -> str:
    """A count with grouping separators ("4,000,000"); "—" for None."""
    if value is None:
        return "—"
    return format_decimal(value, locale=_locale(settings.LANGUAGE_CODE))


def cost_currency() -> str:
    """The currency usage costs are counted in: that of the model prices (``ModelPrice.currency``) when they
    agree, else ``DEFAULT_COST_CURRENCY`` (cached ``COST_CURRENCY_CACHE_SECONDS``). One currency per deployment is assumed (costs of different
    currencies are never added: billing.ledger sums ``UsageEvent.cost`` as they come)."""
    from django.core.cache import cache

    from billing.models import ModelPrice

    def read() -> str:
        codes = list(ModelPrice.objects.order_by().values_list("currency", flat=True).distinct()[:2])
        return codes[0].upper() if len(codes) == 1 else DEFAULT_COST_CURRENCY

    # Read at most once a minute per process (a ledger page shows 100 costs).
    return cache.get_or_set(COST_CURRENCY_CACHE_KEY, read, COST_CURRENCY_CACHE_SECONDS)
