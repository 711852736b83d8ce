"""Reads on bots."""
from __future__ import annotations

from bots.models import Bot
from saas_bot.errors import NotFound
from saas_bot.ids import parse_id
from tenants.models import Company


def bot_find(*, ref: str, company: Company | None = None) -> Bot:
    """A bot by id, @username, username or public id (within ``company`` when given).

    Raises:
        NotFound(code="bot_not_found").
    """
    bots = Bot.objects.select_related("company")
    if company is not None:
        bots = bots.for_company(company)
    ref = ref.strip()
    found = None
    if (bot_id := parse_id(ref)) is not None:
        found = bots.filter(id=bot_id).first()
    found = found or bots.filter(username__iexact=ref.lstrip("@")).first() or bots.filter(public_id=ref).first()
    if found is None:
        raise NotFound(code="bot_not_found", message=f"No bot '{ref}'.")
    return found


def bot_names(*, company: Company) -> dict[int, str]:
    """The company's bots, id -> name as shown ("@username", else the name), oldest first."""
    return {bot.id: str(bot) for bot in Bot.objects.for_company(company).order_by("id")}


def bot_count(company: Company) -> int:
    """How many bots ``company`` has (its plan's ``max_bots`` counts them)."""
    return Bot.objects.for_company(company).count()
