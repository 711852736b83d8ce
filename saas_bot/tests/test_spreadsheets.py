"""CSV exports never hand a spreadsheet a formula (OWASP "CSV Injection"): the rule, the admin's export
action with an end user's message, and usage_export with a hostile company name."""
import csv
import io
from decimal import Decimal

import pytest
from django.core.management import call_command

from saas_bot.spreadsheets import FORMULA_STARTS, csv_cell

HOSTILE = ["=HYPERLINK(\"http://evil.example\",\"click\")", "+1+1", "-2+3", "@SUM(A1:A9)", "\t=1", "\r=1",
           "=cmd|' /C calc'!A0"]


@pytest.mark.parametrize("text", HOSTILE)
def test_a_formula_start_is_neutralised(text):
    assert csv_cell(text) == "'" + text


def test_plain_text_and_numbers_are_unchanged():
    assert csv_cell("How do I reset it? =") == "How do I reset it? ="
    assert csv_cell(-12) == -12 and csv_cell(Decimal("-0.5")) == Decimal("-0.5") and csv_cell(None) == ""
    assert csv_cell(True) == "True"
    assert all(csv_cell(start + "x").startswith("'") for start in FORMULA_STARTS)


def _cells(text: str) -> list[str]:
    return [cell for row in csv.reader(io.StringIO(text)) for cell in row]


def _unsafe(cells: list[str]) -> list[str]:
    return [c for c in cells if c.startswith(FORMULA_STARTS)]


@pytest.mark.django_db
def test_admin_export_of_an_end_users_message_is_safe(owner_client, bot, company):
    from bots.models import Conversation, Message

    conversation = Conversation.objects.create(company=company, bot=bot, channel="telegram")
    message = Message.objects.create(company=company, bot=bot, conversation=conversation, question=HOSTILE[0],
                                     answer="a.", prompt_tokens=3, completion_tokens=4)
    response = owner_client.post("/admin/bots/message/", {"action": "export_csv", "_selected_action": [message.id]})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    cells = _cells(response.content.decode())
    assert "'" + HOSTILE[0] in cells and not _unsafe(cells)
    assert "7" in cells  # total tokens stay a number


@pytest.mark.django_db
def test_usage_export_with_a_hostile_company_name_is_safe(make_company, tmp_path):
    make_company("evil")
    from tenants.models import Company

    Company.objects.filter(slug="evil").update(name="=1+2")
    out = tmp_path / "usage.csv"
    call_command("usage_export", start="2026-01-01", end="2026-12-31", output=str(out))
    cells = _cells(out.read_text())
    assert "'=1+2" in cells and not _unsafe(cells)
